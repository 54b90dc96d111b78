package main

// Following an update or rollback after the write: the progress of each
// slot until the managers are done, and the update status turned into
// the command's result (paused and rolled-back updates are errors).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// updateStopped is the error of an update that paused or rolled back.
type updateStopped struct{ msg string }

func (e *updateStopped) Error() string { return e.msg }

// errUpdateCompleted ends the waiting for a global service whose update
// the managers completed while a node still runs its old task: a paused
// node keeps it until it is active again (a new round replaces it then).
var errUpdateCompleted = errors.New("update completed")

// updateWatch follows a service's update status while waiting for its
// tasks, and turns a paused update or a rollback into an error.
type updateWatch struct {
	name string
	// rollback is set when the user asked for the rollback: rolling
	// back is then the goal, not a failure.
	rollback bool
	// before is the status read before the write, ignored while it
	// stays the same (it is an earlier update's).
	before *api.UpdateStatus
	// out takes the note that a rollback started.
	out io.Writer
	// rolledBack holds the reason once an automatic rollback started.
	rolledBack *string
}

// withReason appends ": MESSAGE" when there is a message.
func withReason(s, msg string) string {
	if msg == "" {
		return s
	}
	return s + ": " + oneLine(msg)
}

// check looks at the update status of svc: a paused update or rollback
// is an error; a rollback the user did not ask for is noted, and an
// error once completed.
func (w *updateWatch) check(svc *api.Service) error {
	st := svc.GetUpdateStatus()
	if st == nil || proto.Equal(st, w.before) {
		return nil
	}
	msg := st.GetMessage()
	switch st.GetState() {
	case api.UpdateStatus_STATE_COMPLETED:
		if svc.GetSpec().GetMode().GetGlobal() != nil && st.GetSpecVersion() == svc.GetSpecVersion() && !w.rollback {
			return errUpdateCompleted
		}
	case api.UpdateStatus_STATE_PAUSED:
		return &updateStopped{withReason(fmt.Sprintf("update of service %s paused", w.name), msg) +
			fmt.Sprintf(" (see shoal service ps %s; resume with shoal service update, or go back with shoal service rollback %s)", w.name, w.name)}
	case api.UpdateStatus_STATE_ROLLBACK_PAUSED:
		return &updateStopped{withReason(fmt.Sprintf("rollback of service %s paused", w.name), msg) +
			fmt.Sprintf(" (see shoal service ps %s)", w.name)}
	case api.UpdateStatus_STATE_ROLLBACK_STARTED, api.UpdateStatus_STATE_ROLLBACK_COMPLETED:
		if w.rollback {
			return nil
		}
		if w.rolledBack == nil {
			w.rolledBack = &msg
			fmt.Fprintln(w.out, withReason("rollback", msg))
		}
		if st.GetState() == api.UpdateStatus_STATE_ROLLBACK_COMPLETED {
			return w.rolledBackErr()
		}
	}
	return nil
}

// updateSettled reports whether the managers are done rolling out the
// service's current spec: its update status is about an older spec (the
// change replaced no task), or no longer in progress. Tasks may all run
// the new spec while the last ones are still watched for the monitor
// period, in which a failure still pauses or rolls back the update.
func updateSettled(svc *api.Service) bool {
	st := svc.GetUpdateStatus()
	if st == nil || st.GetSpecVersion() != svc.GetSpecVersion() {
		return true
	}
	switch st.GetState() {
	case api.UpdateStatus_STATE_UPDATING, api.UpdateStatus_STATE_ROLLBACK_STARTED:
		return false
	}
	return true
}

// rolledBackErr is the error of an update that was rolled back.
func (w *updateWatch) rolledBackErr() error {
	return &updateStopped{withReason(fmt.Sprintf("service %s rolled back to its previous spec", w.name), *w.rolledBack)}
}

// waitForUpdate waits, unless --detach, until every slot of the service
// runs its current spec (as waitForServices does), and fails when the
// update pauses or rolls back.
func waitForUpdate(cmd *cobra.Command, c *client, o *waitOptions, out io.Writer, res updateResult, rollback bool) error {
	if o.detach {
		return nil
	}
	ctx, stop := signal.NotifyContext(commandContext(cmd), os.Interrupt)
	defer stop()
	w := &convergeWaiter{
		out: out, notes: cmd.ErrOrStderr(),
		poll: convergePollInterval, stable: convergeStableFor, timeout: o.timeout,
		now: time.Now, sleep: sleepContext, settled: updateSettled,
	}
	watch := &updateWatch{name: res.target.name, rollback: rollback, before: res.before, out: out}
	fetch := serviceFetcher(c, res.target.id)
	err := w.wait(ctx, res.target.name, func(ctx context.Context) (*api.Service, []*api.Task, error) {
		svc, tasks, err := fetch(ctx)
		if err == nil {
			err = watch.check(svc)
		}
		return svc, tasks, err
	})
	var stopped *updateStopped
	switch {
	case errors.Is(err, errUpdateCompleted):
		fmt.Fprintln(out, "update completed: a paused node keeps its old task until it is active again")
		return nil
	case errors.As(err, &stopped):
		return stopped
	case err != nil:
		return err
	case watch.rolledBack != nil:
		// The rollback converged before its status said so.
		return watch.rolledBackErr()
	}
	return nil
}

// updateWaitHelp explains the waiting of update and rollback.
const updateWaitHelp = "Unless --detach, the command then shows the progress of each slot until every task runs the\n" +
	"new spec and has for a second, and the managers have watched the last ones for the monitor period\n" +
	"(a paused node of a global service keeps its old task: the update completes without it). It fails if the update pauses (--update-failure-action pause) or\n" +
	"the service rolls back; with --wait-timeout once that long has passed. Ctrl-C stops the waiting\n" +
	"only: the update goes on in the background."
