package main

// How tasks are printed by `shoal service ps` and `shoal node ps`. Every
// function here is a pure function of API objects, the names that
// resolve their IDs and the time taken as "now", so golden tests can feed
// fixed objects.

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shoalhq/shoal/proto/api"
)

// maxErrLength is how much of a task's error the table shows unless
// --no-trunc, as docker does.
const maxErrLength = 30

// taskRow is one line of `shoal service ps` or `shoal node ps`. The JSON
// keys are docker's.
type taskRow struct {
	CurrentState string
	DesiredState string
	Error        string
	ID           string
	Image        string
	Name         string
	Node         string
	Ports        string

	// history is set when the task is an older task of the same slot
	// (or, for global services, the same node) as the row above it; the
	// table prints its name as " \_ NAME".
	history bool
}

// taskNames resolves the IDs a task row shows to names.
type taskNames struct {
	// services maps service IDs to service names.
	services map[string]string
	// nodes maps node IDs to hostnames.
	nodes map[string]string
}

// service is the name of the service with this ID, or the ID (cut to 12
// characters when trunc) when the service is not known, e.g. removed.
func (n taskNames) service(id string, trunc bool) string {
	if name := n.services[id]; name != "" {
		return name
	}
	return maybeTruncate(id, trunc)
}

// node is the hostname of the node with this ID, or the ID (cut to 12
// characters when trunc) when the node is not known; "" for no node.
func (n taskNames) node(id string, trunc bool) string {
	if id == "" {
		return ""
	}
	if host := n.nodes[id]; host != "" {
		return host
	}
	return maybeTruncate(id, trunc)
}

// taskStyle says how much of each value a row keeps. The table cuts IDs,
// image digests and errors unless --no-trunc, and quotes errors as docker
// does; JSON keeps every value whole and unquoted.
type taskStyle struct {
	trunc    bool
	quoteErr bool
}

// sortTasks returns the tasks in the order they are listed: by service
// name (the ID of an unknown service), by slot, global tasks by node, and within one slot (or
// node) the newest first, so a slot's current task heads its history.
func sortTasks(tasks []*api.Task, names taskNames) []*api.Task {
	out := append([]*api.Task(nil), tasks...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if sa, sb := names.service(a.GetServiceId(), false), names.service(b.GetServiceId(), false); sa != sb {
			return sa < sb
		}
		if a.GetServiceId() != b.GetServiceId() {
			return a.GetServiceId() < b.GetServiceId()
		}
		if a.GetSlot() != b.GetSlot() {
			return a.GetSlot() < b.GetSlot()
		}
		if a.GetNodeId() != b.GetNodeId() && a.GetSlot() == 0 {
			return a.GetNodeId() < b.GetNodeId()
		}
		if ca, cb := a.GetMeta().GetCreatedAt(), b.GetMeta().GetCreatedAt(); ca != cb {
			return ca > cb
		}
		if ta, tb := a.GetStatus().GetTimestamp(), b.GetStatus().GetTimestamp(); ta != tb {
			return ta > tb
		}
		return a.GetId() < b.GetId()
	})
	return out
}

// taskGroup identifies a slot of a replicated service, or a node of a
// global one: the tasks that succeeded each other in one place.
type taskGroup struct {
	service string
	slot    uint64
	node    string
}

// groupOf is the slot, or for global tasks (slot 0) the node, of t.
func groupOf(t *api.Task) taskGroup {
	g := taskGroup{service: t.GetServiceId(), slot: t.GetSlot()}
	if g.slot == 0 {
		g.node = t.GetNodeId()
	}
	return g
}

// taskRows turns tasks into rows in listing order; now is the time ages
// are measured from.
func taskRows(tasks []*api.Task, names taskNames, now time.Time, style taskStyle) []taskRow {
	sorted := sortTasks(tasks, names)
	rows := make([]taskRow, 0, len(sorted))
	for i, t := range sorted {
		rows = append(rows, taskRow{
			CurrentState: currentStateText(t.GetStatus(), now),
			DesiredState: taskStateName(t.GetDesiredState()),
			Error:        taskErrorText(t.GetStatus().GetErr(), style),
			ID:           maybeTruncate(t.GetId(), style.trunc),
			Image:        taskImageText(t.GetSpec().GetContainer().GetImage(), style.trunc),
			Name:         taskName(t, names, style.trunc),
			Node:         names.node(t.GetNodeId(), style.trunc),
			Ports:        taskPortsText(t.GetStatus().GetPorts()),
			history:      i > 0 && groupOf(t) == groupOf(sorted[i-1]),
		})
	}
	return rows
}

// taskListOptions say how `service ps` and `node ps` print.
type taskListOptions struct {
	format  string
	quiet   bool
	noTrunc bool
	// now is the time ages ("2 minutes ago") are measured from.
	now time.Time
}

// writeTaskList prints tasks as a table (history tasks indented under the
// current task of their slot), as JSON lines, or only their full IDs
// when quiet.
func writeTaskList(w io.Writer, tasks []*api.Task, names taskNames, o taskListOptions) error {
	switch {
	case o.quiet:
		for _, t := range sortTasks(tasks, names) {
			fmt.Fprintln(w, t.GetId())
		}
		return nil
	case o.format == formatJSON:
		return writeJSONLines(w, taskRows(tasks, names, o.now, taskStyle{}))
	}
	t := newTable(w)
	fmt.Fprintln(t, "ID\tNAME\tIMAGE\tNODE\tDESIRED STATE\tCURRENT STATE\tERROR\tPORTS")
	for _, r := range taskRows(tasks, names, o.now, taskStyle{trunc: !o.noTrunc, quoteErr: true}) {
		name := r.Name
		if r.history {
			name = ` \_ ` + name
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.ID, name, r.Image, r.Node, r.DesiredState, r.CurrentState, r.Error, r.Ports)
	}
	return t.Flush()
}

// taskName is SERVICE.SLOT, or SERVICE.NODEID for a global task (the
// node ID cut to 12 characters when trunc).
func taskName(t *api.Task, names taskNames, trunc bool) string {
	svc := names.service(t.GetServiceId(), trunc)
	switch {
	case t.GetSlot() != 0:
		return fmt.Sprintf("%s.%d", svc, t.GetSlot())
	case t.GetNodeId() != "":
		return svc + "." + maybeTruncate(t.GetNodeId(), trunc)
	default:
		return svc
	}
}

// taskStateName names a task state as docker prints it: Running,
// Shutdown, Ready...
func taskStateName(s api.TaskState) string {
	name, ok := api.TaskState_name[int32(s)]
	if !ok {
		return "Unknown"
	}
	word := strings.ToLower(strings.TrimPrefix(name, "TASK_STATE_"))
	return strings.ToUpper(word[:1]) + word[1:]
}

// currentStateText is the observed state and how long ago it was
// reached, e.g. "Running 2 minutes ago", followed by the health check's
// verdict when the task has one, e.g. "Starting 3 seconds ago
// (starting)"; just the state when the status has no time.
func currentStateText(st *api.TaskStatus, now time.Time) string {
	text := taskStateName(st.GetState())
	if st.GetTimestamp() != 0 {
		text += " " + humanAge(now.Sub(time.Unix(0, st.GetTimestamp()))) + " ago"
	}
	if h := st.GetHealth(); h != "" {
		text += " (" + h + ")"
	}
	return text
}

// humanAge says how long a duration is the way docker does in its
// listings: "less than a second", "5 seconds", "about a minute",
// "3 hours", "2 weeks". A negative duration (clock skew) reads as less
// than a second.
func humanAge(d time.Duration) string {
	seconds := int(d.Seconds())
	minutes := int(d.Minutes())
	hours := int(d.Hours() + 0.5)
	switch {
	case seconds < 1:
		return "less than a second"
	case seconds == 1:
		return "1 second"
	case seconds < 60:
		return fmt.Sprintf("%d seconds", seconds)
	case minutes == 1:
		return "about a minute"
	case minutes < 60:
		return fmt.Sprintf("%d minutes", minutes)
	case hours == 1:
		return "about an hour"
	case hours < 48:
		return fmt.Sprintf("%d hours", hours)
	case hours < 24*7*2:
		return fmt.Sprintf("%d days", hours/24)
	case hours < 24*30*2:
		return fmt.Sprintf("%d weeks", hours/24/7)
	case hours < 24*365*2:
		return fmt.Sprintf("%d months", hours/24/30)
	}
	return fmt.Sprintf("%d years", int(d.Hours())/24/365)
}

// taskErrorText is the task's error: for the table (quoteErr) on one
// line, quoted, and cut to maxErrLength characters with "…" when trunc,
// as docker shows it; otherwise as the task has it.
func taskErrorText(err string, style taskStyle) string {
	if err == "" || !style.quoteErr {
		return err
	}
	err = oneLine(err)
	if style.trunc && utf8.RuneCountInString(err) > maxErrLength {
		err = string([]rune(err)[:maxErrLength-1]) + "…"
	}
	return `"` + err + `"`
}

// oneLine joins a multi-line message into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// taskImageText is the image the task runs, without its digest when trunc.
func taskImageText(image string, trunc bool) string {
	if trunc {
		return imageText(image)
	}
	return image
}

// taskPortsText lists the ports published on the task's node (host mode).
func taskPortsText(ports []*api.PortConfig) string {
	out := make([]string, 0, len(ports))
	for _, p := range ports {
		out = append(out, portText(p))
	}
	return strings.Join(out, ", ")
}

// maybeTruncate cuts an ID to 12 characters when trunc.
func maybeTruncate(id string, trunc bool) string {
	if trunc {
		return truncateID(id)
	}
	return id
}
