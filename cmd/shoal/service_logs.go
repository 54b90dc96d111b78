package main

// `shoal service logs`: the output of a service's tasks, or of one task.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"

	"github.com/shoalhq/shoal/proto/api"
)

// logsOptions are the flags of `shoal service logs`.
type logsOptions struct {
	follow, timestamps, noTaskIDs bool
	tail, since                   string
}

// newServiceLogsCmd returns `shoal service logs`.
func newServiceLogsCmd(g *globalOptions) *cobra.Command {
	var o logsOptions
	cmd := &cobra.Command{
		Use:   "logs [flags] SERVICE|TASK",
		Short: "Show the output of a service's tasks, or of one task",
		Long: "Show the output of a service's tasks (or of one task), gathered from the nodes that run them.\n" +
			"Each line is prefixed with its task, as SERVICE.SLOT.TASKID@HOSTNAME; stderr lines go to stderr.\n" +
			"A node that cannot be reached is reported in a WARNING on stderr. With --follow, new lines\n" +
			"are shown as they come until Ctrl-C.",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("shoal service logs needs exactly one SERVICE or TASK")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			tail, err := parseTail(o.tail)
			if err != nil {
				return err
			}
			since, err := parseSince(o.since, time.Now())
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(commandContext(cmd), os.Interrupt)
			defer stop()
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			p, err := logPrefixes(ctx, c, args[0], !o.noTaskIDs)
			if err != nil {
				return err
			}
			stream, err := c.api.ServiceLogs(ctx, &api.ServiceLogsRequest{Target: args[0], Follow: o.follow, Tail: tail, Since: since})
			if err != nil {
				return c.convert(ctx, err)
			}
			for {
				msg, err := stream.Recv()
				switch {
				case errors.Is(err, io.EOF):
					return nil
				case err != nil && ctx.Err() != nil:
					return nil // Ctrl-C
				case err != nil:
					return c.convert(ctx, err)
				}
				writeLogMessage(cmd.OutOrStdout(), cmd.ErrOrStderr(), msg, p, o.timestamps)
			}
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.follow, "follow", "f", false, "keep showing new lines until Ctrl-C")
	f.StringVar(&o.tail, "tail", "all", "show only the last `N` lines of each task (all: every line)")
	f.StringVar(&o.since, "since", "", "show lines since a `time`: RFC 3339 (2024-05-01T10:00:00Z) or a duration before now (10m, 1h30m)")
	f.BoolVarP(&o.timestamps, "timestamps", "t", false, "show each line's time")
	f.BoolVar(&o.noTaskIDs, "no-task-ids", false, "leave task IDs out of the prefix")
	return cmd
}

// parseTail reads --tail: "all" (or empty) is -1, else a count >= 0.
func parseTail(s string) (int64, error) {
	if s == "" || s == "all" {
		return -1, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid argument %q for --tail: want a number of lines (0 or more) or all", s)
	}
	return n, nil
}

// parseSince reads --since as Unix nanoseconds: "" is 0 (from the
// start), a duration is that long before now, else an RFC 3339 time.
func parseSince(s string, now time.Time) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return 0, fmt.Errorf("invalid argument %q for --since: the duration must not be negative", s)
		}
		return now.Add(-d).UnixNano(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("invalid argument %q for --since: want an RFC 3339 time (2024-05-01T10:00:00Z) or a duration (10m)", s)
	}
	return t.UnixNano(), nil
}

// prefixes names tasks for log lines: SERVICE.SLOT.TASKID@HOSTNAME,
// padded to a common width.
type prefixes struct {
	byTask map[string]string
	width  int
}

// logPrefixes fetches, once, the tasks the target may designate (the
// service's when it is a service, else all), the service names and the
// node hostnames, and makes each task's prefix. A task learned of later
// (while following) gets a prefix made of its IDs alone.
func logPrefixes(ctx context.Context, c *client, target string, withIDs bool) (*prefixes, error) {
	req := &api.ListTasksRequest{}
	if s, err := getService(ctx, c, target); err == nil {
		req.ServiceIds = []string{s.GetId()}
	} else if !isCode(err, codes.NotFound) {
		return nil, err
	}
	tasks, err := read(ctx, c, c.api.ListTasks, req)
	if err != nil {
		return nil, err
	}
	names := taskNames{services: map[string]string{}, nodes: map[string]string{}}
	if svcs, err := read(ctx, c, c.api.ListServices, &api.ListServicesRequest{}); err == nil {
		for _, s := range svcs.GetServices() {
			names.services[s.GetId()] = s.GetSpec().GetAnnotations().GetName()
		}
	}
	if nodes, err := read(ctx, c, c.api.ListNodes, &api.ListNodesRequest{}); err == nil {
		for _, n := range nodes.GetNodes() {
			names.nodes[n.GetId()] = n.GetDescription().GetHostname()
		}
	}
	return makePrefixes(tasks.GetTasks(), names, withIDs), nil
}

// makePrefixes makes the prefixes of tasks.
func makePrefixes(tasks []*api.Task, names taskNames, withIDs bool) *prefixes {
	p := &prefixes{byTask: map[string]string{}}
	for _, t := range tasks {
		s := taskName(t, names, true)
		if withIDs {
			s += "." + truncateID(t.GetId())
		}
		if n := names.node(t.GetNodeId(), true); n != "" {
			s += "@" + n
		}
		p.byTask[t.GetId()] = s
		p.width = max(p.width, len(s))
	}
	return p
}

// prefix is the prefix of a message's task.
func (p *prefixes) prefix(m *api.LogMessage) string {
	if s, ok := p.byTask[m.GetTaskId()]; ok {
		return s
	}
	return truncateID(m.GetTaskId()) + "@" + truncateID(m.GetNodeId())
}

// writeLogMessage prints one message: "PREFIX    | [TIME ]LINE", to
// stdout or (stderr stream) stderr; a message without a task (a node
// that could not be read) is a WARNING on stderr.
func writeLogMessage(stdout, stderr io.Writer, m *api.LogMessage, p *prefixes, timestamps bool) {
	line := strings.TrimRight(string(m.GetData()), "\n")
	if m.GetTaskId() == "" {
		fmt.Fprintf(stderr, "WARNING: %s\n", line)
		return
	}
	w := stdout
	if m.GetStream() == api.LogMessage_STREAM_STDERR {
		w = stderr
	}
	if timestamps {
		line = time.Unix(0, m.GetTimestamp()).UTC().Format(time.RFC3339Nano) + " " + line
	}
	fmt.Fprintf(w, "%-*s | %s\n", p.width, p.prefix(m), line)
}
