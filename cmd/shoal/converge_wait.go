package main

// Waiting for a service to converge after `service create` or `service
// scale`, as docker does unless --detach: poll the service and its tasks,
// print the progress, and return once the service has converged and
// stayed so for a short stability window. Ctrl-C stops the waiting, not
// the service.

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc/codes"

	"github.com/shoalhq/shoal/proto/api"
)

// How often to look and how long a service must stay converged; variables
// so that tests can shorten them.
var (
	convergePollInterval = 200 * time.Millisecond
	convergeStableFor    = time.Second
)

// waitOptions are the flags that say whether, and how long, a command
// waits for the services it changed.
type waitOptions struct {
	detach  bool
	timeout time.Duration
}

// waitHelp is the part of a command's help that explains the waiting.
const waitHelp = "Unless --detach, the command then waits until the service has converged: every task wanted\n" +
	"runs the current spec, and has for a second (a job: enough of its tasks have completed). It prints\n" +
	"the progress as it changes, with the scheduler's reason for a task that cannot be placed and the\n" +
	"error of each task that fails. Like docker it keeps waiting while tasks fail and are restarted;\n" +
	"give --wait-timeout to fail instead once that long has passed. Ctrl-C stops the waiting only: the\n" +
	"service keeps converging in the background."

// addFlags registers --detach and --wait-timeout.
func (o *waitOptions) addFlags(fs *pflag.FlagSet) {
	fs.BoolVarP(&o.detach, "detach", "d", false, "return at once instead of waiting for the service to converge")
	fs.DurationVar(&o.timeout, "wait-timeout", 0, "fail if the service has not converged after this `duration` (0: wait as long as it takes)")
}

// check refuses a negative --wait-timeout.
func (o *waitOptions) check() error {
	if o.timeout < 0 {
		return fmt.Errorf("invalid argument %q for --wait-timeout: must not be negative (0 waits as long as it takes)", o.timeout)
	}
	return nil
}

// waitTarget is a service to wait for: its ID, and its name as the user
// knows it.
type waitTarget struct {
	id, name string
}

// waitForServices waits for each target in turn unless --detach,
// printing the progress to out (io.Discard to wait silently), and
// returns one error per service that did not converge. Ctrl-C stops the
// waiting; it is not an error.
func waitForServices(cmd *cobra.Command, c *client, o *waitOptions, out io.Writer, targets []waitTarget) []error {
	if o.detach {
		return nil
	}
	ctx, stop := signal.NotifyContext(commandContext(cmd), os.Interrupt)
	defer stop()
	w := &convergeWaiter{
		out: out, notes: cmd.ErrOrStderr(),
		poll: convergePollInterval, stable: convergeStableFor, timeout: o.timeout,
		now: time.Now, sleep: sleepContext,
	}
	var errs []error
	for _, t := range targets {
		if len(targets) > 1 {
			fmt.Fprintf(out, "%s:\n", t.name)
		}
		if err := w.wait(ctx, t.name, serviceFetcher(c, t.id)); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// fetchFunc reads a service and all its tasks, history included.
type fetchFunc func(context.Context) (*api.Service, []*api.Task, error)

// serviceFetcher reads the service with this ID and its tasks.
func serviceFetcher(c *client, id string) fetchFunc {
	return func(ctx context.Context) (*api.Service, []*api.Task, error) {
		svc, err := getService(ctx, c, id)
		if err != nil {
			return nil, nil, err
		}
		resp, err := read(ctx, c, c.api.ListTasks, &api.ListTasksRequest{ServiceIds: []string{svc.GetId()}})
		if err != nil {
			return nil, nil, err
		}
		return svc, resp.GetTasks(), nil
	}
}

// convergeWaiter waits for one service at a time to converge.
type convergeWaiter struct {
	// out takes the progress; notes the word that waiting stopped.
	out, notes io.Writer
	// poll is the time between looks; stable how long a service must
	// stay converged (jobs need not: completion is final); timeout, when
	// not 0, how long to wait at most.
	poll, stable, timeout time.Duration
	// now and sleep are the clock, replaced in tests.
	now   func() time.Time
	sleep func(context.Context, time.Duration) error
	// settled, when set, must also hold for the service to count as
	// converged (an update's last monitor period has ended).
	settled func(*api.Service) bool
}

// wait polls until the service has converged and stayed converged for
// the stability window, printing the progress. When ctx ends (Ctrl-C) it
// says the service keeps converging in the background and returns nil.
// It fails when the service is removed, a read fails, or the timeout
// passes.
func (w *convergeWaiter) wait(ctx context.Context, name string, fetch fetchFunc) error {
	p := newProgressPrinter(w.out)
	start := w.now()
	var convergedAt time.Time
	converged := false
	for {
		if ctx.Err() != nil {
			return w.interrupted(name)
		}
		svc, tasks, err := fetch(ctx)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return w.interrupted(name)
			case isCode(err, codes.NotFound):
				return fmt.Errorf("service %s was removed while waiting for it to converge", name)
			}
			return fmt.Errorf("stopped waiting for service %s to converge: %w", name, err)
		}
		c := assess(svc, tasks)
		if w.settled != nil && !w.settled(svc) {
			c.converged = false
		}
		p.show(c)
		now := w.now()
		stable := w.stable
		if c.job {
			stable = 0
		}
		switch {
		case !c.converged:
			converged = false
		case !converged:
			converged, convergedAt = true, now
			if stable > 0 {
				fmt.Fprintf(w.out, "verify: Waiting %s to verify that tasks are stable...\n", stable)
			}
		}
		if converged && now.Sub(convergedAt) >= stable {
			fmt.Fprintln(w.out, "verify: Service converged")
			return nil
		}
		if w.timeout > 0 && now.Sub(start) >= w.timeout {
			return fmt.Errorf("service %s did not converge within %s (overall progress: %s); it keeps converging in the background: see shoal service ps %s",
				name, w.timeout, c.overall(), name)
		}
		if err := w.sleep(ctx, w.poll); err != nil {
			return w.interrupted(name)
		}
	}
}

// interrupted says that waiting stopped while the service converges on.
func (w *convergeWaiter) interrupted(name string) error {
	fmt.Fprintf(w.notes, "service %s is still converging in the background: see shoal service ps %s\n", name, name)
	return nil
}

// sleepContext sleeps for d, or until ctx ends (and then returns its error).
func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
