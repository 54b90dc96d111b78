package main

// How nodes are printed. Every function here is a pure function of API
// objects (and the ID of the node that answered), so golden tests can
// feed fixed objects.

import (
	"fmt"
	"io"
	"sort"

	"github.com/shoalhq/shoal/proto/api"
)

// nodeRow is one line of `shoal node ls`. The JSON keys are docker's.
type nodeRow struct {
	Availability  string
	EngineVersion string
	Hostname      string
	ID            string
	ManagerStatus string
	Self          bool
	Status        string
}

// nodeRows turns nodes into rows sorted by hostname, then ID; self is the
// ID of the node that answered.
func nodeRows(nodes []*api.Node, self string) []nodeRow {
	rows := make([]nodeRow, 0, len(nodes))
	for _, n := range nodes {
		rows = append(rows, nodeRow{
			Availability:  availabilityName(n.GetSpec().GetAvailability()),
			EngineVersion: n.GetDescription().GetVersion(),
			Hostname:      n.GetDescription().GetHostname(),
			ID:            n.GetId(),
			ManagerStatus: nodeManagerStatus(n),
			Self:          self != "" && n.GetId() == self,
			Status:        nodeStateName(n.GetStatus().GetState()),
		})
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].Hostname != rows[j].Hostname {
			return rows[i].Hostname < rows[j].Hostname
		}
		return rows[i].ID < rows[j].ID
	})
	return rows
}

// writeNodeList prints `shoal node ls` in the given format (table or
// json), or only the IDs when quiet.
func writeNodeList(w io.Writer, nodes []*api.Node, self, format string, quiet bool) error {
	rows := nodeRows(nodes, self)
	return writeRows(w, rows, format, quiet, func(r nodeRow) string { return r.ID }, func(t io.Writer) {
		fmt.Fprintln(t, "ID\tHOSTNAME\tSTATUS\tAVAILABILITY\tMANAGER STATUS\tENGINE VERSION")
		for _, r := range rows {
			id := r.ID
			if r.Self {
				id += " *"
			}
			fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\n", id, r.Hostname, r.Status, r.Availability, r.ManagerStatus, r.EngineVersion)
		}
	})
}

// nodeManagerStatus is Leader, Reachable or Unreachable for a manager and
// empty for a worker.
func nodeManagerStatus(n *api.Node) string {
	ms := n.GetManagerStatus()
	if ms == nil {
		return ""
	}
	return managerStatus(ms.GetLeader(), ms.GetReachability())
}

// nodeStateName names a node state as docker does.
func nodeStateName(s api.NodeState) string {
	switch s {
	case api.NodeState_NODE_STATE_READY:
		return "Ready"
	case api.NodeState_NODE_STATE_DOWN:
		return "Down"
	case api.NodeState_NODE_STATE_DISCONNECTED:
		return "Disconnected"
	default:
		return "Unknown"
	}
}

// availabilityName names a node availability as docker does.
func availabilityName(a api.NodeAvailability) string {
	switch a {
	case api.NodeAvailability_NODE_AVAILABILITY_PAUSE:
		return "Pause"
	case api.NodeAvailability_NODE_AVAILABILITY_DRAIN:
		return "Drain"
	default:
		return "Active"
	}
}

// roleName is "manager" or "worker".
func roleName(r api.NodeRole) string {
	if r == api.NodeRole_NODE_ROLE_MANAGER {
		return "manager"
	}
	return "worker"
}

// writeNodesPretty prints `shoal node inspect --pretty`: each node's
// summary, separated by blank lines.
func writeNodesPretty(w io.Writer, nodes []*api.Node) error {
	p := prettyWriter{w}
	for i, n := range nodes {
		if i > 0 {
			fmt.Fprintln(w)
		}
		p.line(0, "ID", n.GetId())
		if name := n.GetSpec().GetAnnotations().GetName(); name != "" {
			p.line(0, "Name", name)
		}
		p.line(0, "Hostname", n.GetDescription().GetHostname())
		if t := formatTime(n.GetMeta().GetCreatedAt()); t != "" {
			p.line(0, "Joined at", t)
		}
		p.line(0, "Role", roleName(n.GetRole()))
		if n.GetSpec().GetDesiredRole() != n.GetRole() {
			p.line(0, "Desired role", roleName(n.GetSpec().GetDesiredRole()))
		}
		p.labels(0, "Labels", n.GetSpec().GetAnnotations().GetLabels())
		p.head(0, "Status")
		p.line(1, "State", nodeStateName(n.GetStatus().GetState()))
		if m := n.GetStatus().GetMessage(); m != "" {
			p.line(1, "Message", m)
		}
		p.line(1, "Availability", availabilityName(n.GetSpec().GetAvailability()))
		if a := n.GetStatus().GetAddr(); a != "" {
			p.line(1, "Address", a)
		}
		if ms := n.GetManagerStatus(); ms != nil {
			p.head(0, "Manager Status")
			p.line(1, "Address", ms.GetAddr())
			p.line(1, "Raft Status", managerStatus(false, ms.GetReachability()))
			p.line(1, "Leader", yesNo(ms.GetLeader()))
		}
		d := n.GetDescription()
		if pl := d.GetPlatform(); pl != nil {
			p.head(0, "Platform")
			p.line(1, "Operating System", pl.GetOs())
			p.line(1, "Architecture", pl.GetArchitecture())
		}
		if r := d.GetResources(); r != nil {
			p.head(0, "Resources")
			p.line(1, "CPUs", formatCPUs(r.GetNanoCpus()))
			p.line(1, "Memory", formatBytes(r.GetMemoryBytes()))
		}
		p.labels(0, "Engine Labels", d.GetEngineLabels())
		if v := d.GetVersion(); v != "" {
			p.line(0, "Engine Version", v)
		}
	}
	return nil
}
