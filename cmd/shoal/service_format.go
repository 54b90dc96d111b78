package main

// How services are printed. Every function here is a pure function of
// API objects, so golden tests can feed fixed objects.

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/shoalhq/shoal/proto/api"
)

// serviceRow is one line of `shoal service ls`. The JSON keys are docker's.
type serviceRow struct {
	ID       string
	Image    string
	Mode     string
	Name     string
	Ports    string
	Replicas string
	// UpdateState is the state of the service's last update or
	// rollback ("updating", "paused", "rollback completed"...), empty
	// when it never had one.
	UpdateState string
}

// serviceRows turns the listing into rows sorted by name, then ID.
func serviceRows(resp *api.ListServicesResponse) []serviceRow {
	rows := make([]serviceRow, 0, len(resp.GetServices()))
	for _, s := range resp.GetServices() {
		rows = append(rows, serviceRow{
			ID:       s.GetId(),
			Image:    imageText(s.GetSpec().GetTask().GetContainer().GetImage()),
			Mode:     serviceModeName(s.GetSpec().GetMode()),
			Name:     s.GetSpec().GetAnnotations().GetName(),
			Ports:    portsText(s),
			Replicas: replicasText(s, resp.GetCounts()[s.GetId()]),
			UpdateState: func() string {
				if u := s.GetUpdateStatus(); u != nil {
					return updateStateName(u.GetState())
				}
				return ""
			}(),
		})
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].Name != rows[j].Name {
			return rows[i].Name < rows[j].Name
		}
		return rows[i].ID < rows[j].ID
	})
	return rows
}

// writeServiceList prints `shoal service ls` in the given format (table
// or json), or only the full IDs when quiet. The table shows IDs cut to
// 12 characters, as docker does; JSON keeps them whole.
func writeServiceList(w io.Writer, resp *api.ListServicesResponse, format string, quiet bool) error {
	rows := serviceRows(resp)
	return writeRows(w, rows, format, quiet, func(r serviceRow) string { return r.ID }, func(t io.Writer) {
		fmt.Fprintln(t, "ID\tNAME\tMODE\tREPLICAS\tIMAGE\tPORTS\tUPDATE")
		for _, r := range rows {
			fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", truncateID(r.ID), r.Name, r.Mode, r.Replicas, r.Image, r.Ports, r.UpdateState)
		}
	})
}

// serviceModeName is replicated, global, replicated job or global job.
func serviceModeName(m *api.ServiceMode) string {
	switch {
	case m.GetGlobal() != nil:
		return "global"
	case m.GetReplicatedJob() != nil:
		return "replicated job"
	case m.GetGlobalJob() != nil:
		return "global job"
	default:
		return "replicated"
	}
}

// replicasText is "running/desired", with "(N completed)" for jobs and
// "(max N per node)" when the service caps tasks per node. Without a
// count from the server, a replicated service's desired number comes from
// its spec.
func replicasText(s *api.Service, c *api.ReplicaCount) string {
	mode := s.GetSpec().GetMode()
	desired := c.GetDesired()
	if c == nil {
		switch {
		case mode.GetReplicated() != nil:
			desired = mode.GetReplicated().GetReplicas()
		case mode.GetReplicatedJob() != nil:
			desired = mode.GetReplicatedJob().GetMaxConcurrent()
		}
	}
	text := fmt.Sprintf("%d/%d", c.GetRunning(), desired)
	if mode.GetReplicatedJob() != nil || mode.GetGlobalJob() != nil {
		text += fmt.Sprintf(" (%d completed)", c.GetCompleted())
	}
	if perNode := s.GetSpec().GetTask().GetPlacement().GetMaxReplicas(); perNode > 0 {
		text += fmt.Sprintf(" (max %d per node)", perNode)
	}
	return text
}

// imageText is the image reference without its digest, as docker shows it.
func imageText(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		return image[:i]
	}
	return image
}

// portsText lists the published ports: the ones the system allocated
// (which know the port it picked when none was asked for), else the spec's.
// Ingress ports read "*:8080->80/tcp", host-mode ports "8080->80/tcp (host)".
func portsText(s *api.Service) string {
	ports := s.GetEndpoint().GetPorts()
	if len(ports) == 0 {
		ports = s.GetSpec().GetEndpoint().GetPorts()
	}
	out := make([]string, 0, len(ports))
	for _, p := range ports {
		out = append(out, portText(p))
	}
	return strings.Join(out, ", ")
}

// portText prints one published port.
func portText(p *api.PortConfig) string {
	proto := "tcp"
	if p.GetProtocol() == api.PortConfig_PROTOCOL_UDP {
		proto = "udp"
	}
	target := fmt.Sprintf("%d/%s", p.GetTargetPort(), proto)
	switch {
	case p.GetPublishMode() == api.PortConfig_PUBLISH_MODE_HOST && p.GetPublishedPort() == 0:
		return target + " (host)"
	case p.GetPublishMode() == api.PortConfig_PUBLISH_MODE_HOST:
		return fmt.Sprintf("%d->%s (host)", p.GetPublishedPort(), target)
	case p.GetPublishedPort() == 0:
		return "*:?->" + target
	default:
		return fmt.Sprintf("*:%d->%s", p.GetPublishedPort(), target)
	}
}
