package main

// What `shoal service ps` and `shoal node ps` share: their flags, the
// desired-state filter, and listing the tasks with the names their IDs
// resolve to.

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoalhq/shoal/proto/api"
)

// psOptions are the flags of the task listings.
type psOptions struct {
	format  string
	quiet   bool
	noTrunc bool
	filters []string
}

// addFlags registers --format, --quiet, --no-trunc and --filter.
func (o *psOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.format, "format", formatTable, "output `format`: table or json (one object per line, values not shortened)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print task IDs only")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "do not shorten IDs, image digests and errors in the table")
	f.StringArrayVarP(&o.filters, "filter", "f", nil, "show only tasks that match: desired-state=running|shutdown|complete|accepted (repeatable; default: all tasks, history included)")
}

// desiredStates checks the flags and returns the desired states the
// filters ask for (nil for all).
func (o *psOptions) desiredStates() ([]api.TaskState, error) {
	if err := checkFormat("format", o.format, formatTable, formatJSON); err != nil {
		return nil, err
	}
	return parseTaskFilters(o.filters)
}

// desiredStateFilters maps the values of --filter desired-state to the
// desired states they select. "running" takes in tasks held back by a
// restart delay (desired READY): they are meant to run. "shutdown" takes
// in tasks of removed services (desired REMOVE). "accepted" is docker's.
var desiredStateFilters = map[string][]api.TaskState{
	"running":  {api.TaskState_TASK_STATE_READY, api.TaskState_TASK_STATE_RUNNING},
	"shutdown": {api.TaskState_TASK_STATE_SHUTDOWN, api.TaskState_TASK_STATE_REMOVE},
	"complete": {api.TaskState_TASK_STATE_COMPLETE},
	"accepted": {api.TaskState_TASK_STATE_ACCEPTED},
}

// parseTaskFilters reads --filter desired-state=VALUE values; several
// values select the tasks matching any of them.
func parseTaskFilters(filters []string) ([]api.TaskState, error) {
	var states []api.TaskState
	seen := map[api.TaskState]bool{}
	for _, f := range filters {
		key, value, ok := strings.Cut(f, "=")
		switch {
		case !ok || value == "":
			return nil, fmt.Errorf("invalid argument %q for --filter: expected desired-state=running|shutdown|complete|accepted", f)
		case key != "desired-state":
			return nil, fmt.Errorf("invalid argument %q for --filter: unknown filter %q (the valid filter is desired-state)", f, key)
		}
		selected, ok := desiredStateFilters[strings.ToLower(value)]
		if !ok {
			return nil, fmt.Errorf("invalid argument %q for --filter: desired-state must be running, shutdown, complete or accepted", f)
		}
		for _, s := range selected {
			if !seen[s] {
				seen[s] = true
				states = append(states, s)
			}
		}
	}
	return states, nil
}

// listTasks runs the ListTasks request and prints the tasks to w.
// serviceNames resolves the services' IDs when the caller already knows
// them; when nil they are looked up. Names are a courtesy: when a lookup
// fails, IDs are printed instead.
func listTasks(ctx context.Context, c *client, w io.Writer, req *api.ListTasksRequest, serviceNames map[string]string, o *psOptions) error {
	resp, err := read(ctx, c, c.api.ListTasks, req)
	if err != nil {
		return err
	}
	tasks := resp.GetTasks()
	names := taskNames{services: serviceNames, nodes: map[string]string{}}
	if names.services == nil {
		names.services = map[string]string{}
		if len(tasks) > 0 {
			if svcs, err := read(ctx, c, c.api.ListServices, &api.ListServicesRequest{}); err == nil {
				for _, s := range svcs.GetServices() {
					names.services[s.GetId()] = s.GetSpec().GetAnnotations().GetName()
				}
			}
		}
	}
	if !o.quiet && anyPlaced(tasks) {
		if nodes, err := read(ctx, c, c.api.ListNodes, &api.ListNodesRequest{}); err == nil {
			for _, n := range nodes.GetNodes() {
				names.nodes[n.GetId()] = n.GetDescription().GetHostname()
			}
		}
	}
	return writeTaskList(w, tasks, names, taskListOptions{
		format: o.format, quiet: o.quiet, noTrunc: o.noTrunc, now: time.Now(),
	})
}

// anyPlaced reports whether any task has a node.
func anyPlaced(tasks []*api.Task) bool {
	for _, t := range tasks {
		if t.GetNodeId() != "" {
			return true
		}
	}
	return false
}
