package main

// `shoal service inspect --pretty`: a human summary of services, in the
// shape of docker's. Only what the spec sets is shown; unset fields mean
// the system's defaults.

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/shoalhq/shoal/proto/api"
)

// writeServicesPretty prints each service's summary, separated by blank
// lines.
func writeServicesPretty(w io.Writer, services []*api.Service) error {
	for i, s := range services {
		if i > 0 {
			fmt.Fprintln(w)
		}
		writeServicePretty(prettyWriter{w}, s)
	}
	return nil
}

// writeServicePretty prints one service.
func writeServicePretty(p prettyWriter, s *api.Service) {
	spec := s.GetSpec()
	p.line(0, "ID", s.GetId())
	p.line(0, "Name", spec.GetAnnotations().GetName())
	p.labels(0, "Labels", spec.GetAnnotations().GetLabels())
	writeModePretty(p, spec.GetMode())
	if u := s.GetUpdateStatus(); u != nil {
		p.head(0, "UpdateStatus")
		p.line(1, "State", updateStateName(u.GetState()))
		if t := formatTime(u.GetStartedAt()); t != "" {
			p.line(1, "Started", t)
		}
		if t := formatTime(u.GetCompletedAt()); t != "" {
			p.line(1, "Completed", t)
		}
		if u.GetMessage() != "" {
			p.line(1, "Message", u.GetMessage())
		}
	}
	task := spec.GetTask()
	if pl := task.GetPlacement(); pl != nil {
		p.head(0, "Placement")
		if len(pl.GetConstraints()) > 0 {
			p.line(1, "Constraints", strings.Join(pl.GetConstraints(), ", "))
		}
		for _, pref := range pl.GetPreferences() {
			p.line(1, "Preference", "spread="+pref.GetSpread())
		}
		if pl.GetMaxReplicas() > 0 {
			p.line(1, "Max Replicas Per Node", pl.GetMaxReplicas())
		}
	}
	writeUpdateConfigPretty(p, "UpdateConfig", spec.GetUpdate())
	writeUpdateConfigPretty(p, "RollbackConfig", spec.GetRollback())
	writeContainerPretty(p, task.GetContainer())
	writeResourcesPretty(p, task.GetResources())
	if r := task.GetRestart(); r != nil {
		p.head(0, "Restart Policy")
		p.line(1, "Condition", strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(r.GetCondition().String(), "CONDITION_"), "_", "-")))
		if r.Delay != nil {
			p.line(1, "Delay", duration(r.GetDelay()))
		}
		p.line(1, "Max Attempts", r.GetMaxAttempts())
		if r.GetWindow() > 0 {
			p.line(1, "Window", duration(r.GetWindow()))
		}
	}
	for i, n := range task.GetNetworks() {
		text := n.GetTarget()
		if len(n.GetAliases()) > 0 {
			text += " (aliases: " + strings.Join(n.GetAliases(), ", ") + ")"
		}
		if i == 0 {
			p.line(0, "Networks", text)
		} else {
			p.line(0, "", text)
		}
	}
	mode := "vip"
	if spec.GetEndpoint().GetMode() == api.EndpointSpec_MODE_DNSRR {
		mode = "dnsrr"
	}
	p.line(0, "Endpoint Mode", mode)
	if ports := portsText(s); ports != "" {
		p.line(0, "Ports", ports)
	}
	for i, v := range s.GetEndpoint().GetVirtualIps() {
		key := ""
		if i == 0 {
			key = "Virtual IPs"
		}
		p.line(0, key, v.GetNetworkId()+": "+v.GetAddr())
	}
}

// writeModePretty prints the service mode and its numbers.
func writeModePretty(p prettyWriter, m *api.ServiceMode) {
	switch {
	case m.GetGlobal() != nil:
		p.line(0, "Service Mode", "Global")
	case m.GetGlobalJob() != nil:
		p.line(0, "Service Mode", "Global Job")
	case m.GetReplicatedJob() != nil:
		p.line(0, "Service Mode", "Replicated Job")
		p.line(1, "Max Concurrent", m.GetReplicatedJob().GetMaxConcurrent())
		p.line(1, "Total Completions", m.GetReplicatedJob().GetTotalCompletions())
	default:
		p.line(0, "Service Mode", "Replicated")
		p.line(1, "Replicas", m.GetReplicated().GetReplicas())
	}
}

// writeUpdateConfigPretty prints an update or rollback config, if set.
func writeUpdateConfigPretty(p prettyWriter, title string, u *api.UpdateConfig) {
	if u == nil {
		return
	}
	p.head(0, title)
	if u.Parallelism != nil {
		p.line(1, "Parallelism", u.GetParallelism())
	}
	if u.GetDelay() > 0 {
		p.line(1, "Delay", duration(u.GetDelay()))
	}
	p.line(1, "On failure", strings.ToLower(strings.TrimPrefix(u.GetFailureAction().String(), "FAILURE_ACTION_")))
	if u.Monitor != nil {
		p.line(1, "Monitoring Period", duration(u.GetMonitor()))
	}
	p.line(1, "Max failure ratio", u.GetMaxFailureRatio())
	order := "stop-first"
	if u.GetOrder() == api.UpdateConfig_ORDER_START_FIRST {
		order = "start-first"
	}
	p.line(1, "Update order", order)
	if u.GetDrain() > 0 {
		p.line(1, "Drain", duration(u.GetDrain()))
	}
}

// writeContainerPretty prints the container spec.
func writeContainerPretty(p prettyWriter, c *api.ContainerSpec) {
	p.head(0, "ContainerSpec")
	p.line(1, "Image", c.GetImage())
	if len(c.GetCommand()) > 0 {
		p.line(1, "Command", strings.Join(c.GetCommand(), " "))
	}
	if len(c.GetArgs()) > 0 {
		p.line(1, "Args", strings.Join(c.GetArgs(), " "))
	}
	for i, e := range c.GetEnv() {
		key := ""
		if i == 0 {
			key = "Env"
		}
		p.line(1, key, e)
	}
	for _, kv := range []struct{ key, value string }{
		{"Dir", c.GetDir()}, {"User", c.GetUser()}, {"Hostname", c.GetHostname()}, {"Stop Signal", c.GetStopSignal()},
	} {
		if kv.value != "" {
			p.line(1, kv.key, kv.value)
		}
	}
	if c.StopGracePeriod != nil {
		p.line(1, "Stop Grace Period", duration(c.GetStopGracePeriod()))
	}
	if c.GetInit() {
		p.line(1, "Init", true)
	}
	if c.GetReadOnly() {
		p.line(1, "Read Only", true)
	}
	if h := c.GetHealthcheck(); h != nil {
		p.line(1, "Healthcheck", strings.Join(h.GetTest(), " "))
	}
	for _, m := range c.GetMounts() {
		ro := ""
		if m.GetReadOnly() {
			ro = ", read-only"
		}
		typ := strings.ToLower(strings.TrimPrefix(m.GetType().String(), "TYPE_"))
		p.line(1, "Mount", fmt.Sprintf("%s (%s %s%s)", m.GetTarget(), typ, m.GetSource(), ro))
	}
	for _, s := range c.GetSecrets() {
		p.line(1, "Secret", s.GetSecretName()+" -> "+s.GetTarget().GetName())
	}
	for _, s := range c.GetConfigs() {
		p.line(1, "Config", s.GetConfigName()+" -> "+s.GetTarget().GetName())
	}
}

// writeResourcesPretty prints reservations and limits, if set.
func writeResourcesPretty(p prettyWriter, r *api.ResourceRequirements) {
	if r.GetReservations() == nil && r.GetLimits() == nil {
		return
	}
	p.head(0, "Resources")
	for _, part := range []struct {
		title string
		res   *api.Resources
	}{{"Reservations", r.GetReservations()}, {"Limits", r.GetLimits()}} {
		if part.res == nil {
			continue
		}
		p.head(1, part.title)
		if part.res.GetNanoCpus() > 0 {
			p.line(2, "CPU", formatCPUs(part.res.GetNanoCpus()))
		}
		if part.res.GetMemoryBytes() > 0 {
			p.line(2, "Memory", formatBytes(part.res.GetMemoryBytes()))
		}
	}
}

// updateStateName names an update's state.
func updateStateName(s api.UpdateStatus_State) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(s.String(), "STATE_"), "_", " "))
}

// duration prints nanoseconds as a Go duration (1m30s).
func duration(ns int64) string { return time.Duration(ns).String() }
