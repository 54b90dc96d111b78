package controlapi

import (
	"fmt"
	"math"
	"path"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shoalhq/shoal/proto/api"
	"github.com/shoalhq/shoal/scheduler"
)

// nameRE is the syntax of service (and other object) names.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// volumeNameRE is the syntax of a named volume.
var volumeNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// modeNames lists the service modes, for messages.
const modeNames = "replicated, global, replicated-job, global-job"

// ValidateServiceSpec checks a service spec as a user wrote it and
// returns nil or a *FieldError for the first problem, in the order of the
// spec's fields. It reads nothing but the spec (whether networks, secrets
// or configs exist is not its concern) and never changes it.
//
// Rules, beyond "enum values are known" and "durations are not negative"
// everywhere:
//   - annotations.name is required and matches ^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$;
//     label keys are not empty.
//   - task.container.image is required and has no whitespace; env entries
//     are KEY=VALUE or KEY (not empty, no leading '='); mounts have unique
//     absolute targets, binds an absolute source, volumes a valid name or
//     none (anonymous), tmpfs no source and no negative size; the health
//     check test is empty, ["CMD", ARG...], ["CMD-SHELL", COMMAND] or
//     ["NONE"]; secrets and configs name what they reference, and no two
//     land on the same file.
//   - task.resources: no negative amount; a limit, where set, is at least
//     the reservation; pids is a limit only.
//   - task.placement: constraints parse (see scheduler.ParseConstraint), preferences
//     are spread=node.labels.NAME or engine.labels.NAME, max_replicas only
//     with a replicated or replicated-job mode.
//   - task.networks: target set and not repeated.
//   - mode is required. For replicated-job, total_completions is at least
//     1 and max_concurrent at most total_completions; max_concurrent 0
//     means 1 (one task at a time), as the orchestrator reads it.
//   - update, rollback: max_failure_ratio in [0, 1]; a rollback's
//     failure_action is pause or continue.
//   - endpoint.ports: target_port 1..65535, published_port 0..65535 (0:
//     the system picks), no two ports publish the same port and protocol,
//     and a dnsrr endpoint publishes in host mode only.
func ValidateServiceSpec(spec *api.ServiceSpec) error {
	if spec == nil {
		return fieldErr("spec", "required: send the service's spec")
	}
	if err := validateServiceName("annotations.name", spec.GetAnnotations().GetName()); err != nil {
		return err
	}
	if err := validateLabels("annotations.labels", spec.GetAnnotations().GetLabels()); err != nil {
		return err
	}
	if err := validateTaskSpec("task", spec.GetTask()); err != nil {
		return err
	}
	if err := validateMode("mode", spec.GetMode()); err != nil {
		return err
	}
	if spec.GetTask().GetPlacement().GetMaxReplicas() > 0 {
		switch spec.GetMode().GetMode().(type) {
		case *api.ServiceMode_Global, *api.ServiceMode_GlobalJob:
			return fieldErr("task.placement.max_replicas",
				"only applies to replicated and replicated-job services (a global service runs one task per node); set it to 0")
		}
	}
	if err := validateUpdateConfig("update", spec.GetUpdate(), false); err != nil {
		return err
	}
	if err := validateUpdateConfig("rollback", spec.GetRollback(), true); err != nil {
		return err
	}
	return validateEndpoint("endpoint", spec.GetEndpoint())
}

// validateServiceName checks a required object name.
func validateServiceName(field, name string) error {
	if name == "" {
		return fieldErr(field, "required: give the service a name")
	}
	if !nameRE.MatchString(name) {
		return fieldErr(field,
			"%q is not a valid name: use 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit", name)
	}
	return nil
}

// validateLabels checks that no label key is empty.
func validateLabels(field string, labels map[string]string) error {
	if _, ok := labels[""]; ok {
		return fieldErr(field, "a label has an empty key: give every label a key")
	}
	return nil
}

// validateTaskSpec checks the task template.
func validateTaskSpec(field string, t *api.TaskSpec) error {
	if err := validateContainer(field+".container", t.GetContainer()); err != nil {
		return err
	}
	if err := validateResources(field+".resources", t.GetResources()); err != nil {
		return err
	}
	if err := validateRestart(field+".restart", t.GetRestart()); err != nil {
		return err
	}
	if err := validatePlacement(field+".placement", t.GetPlacement()); err != nil {
		return err
	}
	return validateNetworks(field+".networks", t.GetNetworks())
}

// validateContainer checks the container spec.
func validateContainer(field string, c *api.ContainerSpec) error {
	image := c.GetImage()
	if image == "" {
		return fieldErr(field+".image", "required: name the image to run, e.g. nginx:1.27")
	}
	if strings.IndexFunc(image, isSpace) >= 0 {
		return fieldErr(field+".image", "%q contains whitespace: an image reference is NAME[:TAG][@DIGEST]", image)
	}
	for i, e := range c.GetEnv() {
		f := fmt.Sprintf("%s.env[%d]", field, i)
		if e == "" {
			return fieldErr(f, "empty entry: write KEY=VALUE, or remove it")
		}
		if strings.HasPrefix(e, "=") {
			return fieldErr(f, "%q has no variable name before '=': write KEY=VALUE", e)
		}
	}
	if err := validateLabels(field+".labels", c.GetLabels()); err != nil {
		return err
	}
	if err := validateMounts(field+".mounts", c.GetMounts()); err != nil {
		return err
	}
	if c.StopGracePeriod != nil {
		if err := nonNegativeDuration(field+".stop_grace_period", *c.StopGracePeriod); err != nil {
			return err
		}
	}
	if err := validateHealthcheck(field+".healthcheck", c.GetHealthcheck()); err != nil {
		return err
	}
	if err := validateFileRefs(field, c); err != nil {
		return err
	}
	if _, ok := c.GetSysctls()[""]; ok {
		return fieldErr(field+".sysctls", "a sysctl has an empty name: write e.g. net.core.somaxconn=1024")
	}
	seen := map[string]bool{}
	for i, u := range c.GetUlimits() {
		f := fmt.Sprintf("%s.ulimits[%d]", field, i)
		switch {
		case u.GetName() == "":
			return fieldErr(f+".name", "required: name the limit, e.g. nofile")
		case seen[u.GetName()]:
			return fieldErr(f+".name", "%q is set twice: keep one", u.GetName())
		case u.GetSoft() > u.GetHard():
			return fieldErr(f+".soft", "%d is above the hard limit %d: lower soft or raise hard", u.GetSoft(), u.GetHard())
		}
		seen[u.GetName()] = true
	}
	return nil
}

// secretsDir is where a task's secrets appear; mounts may not cover it.
const secretsDir = "/run/secrets"

// validateMounts checks each mount and that no two share a target.
func validateMounts(field string, mounts []*api.Mount) error {
	targets := map[string]int{}
	for i, m := range mounts {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := knownEnum(f+".type", m.GetType()); err != nil {
			return err
		}
		target := m.GetTarget()
		if target == "" {
			return fieldErr(f+".target", "required: give the absolute path inside the container")
		}
		if !path.IsAbs(target) {
			return fieldErr(f+".target", "%q is not absolute: write a path starting with /", target)
		}
		if clean := path.Clean(target); clean == secretsDir || strings.HasPrefix(clean, secretsDir+"/") {
			return fieldErr(f+".target", "%q is reserved for secrets (%s/NAME): mount somewhere else, and give secrets with --secret", target, secretsDir)
		}
		clean := path.Clean(target)
		if j, dup := targets[clean]; dup {
			return fieldErr(f+".target", "%s is also the target of mounts[%d]: mount one thing per path", target, j)
		}
		targets[clean] = i
		if m.GetType() != api.Mount_TYPE_TMPFS && (m.GetTmpfsSizeBytes() != 0 || m.GetTmpfsMode() != 0) {
			return fieldErr(f+".tmpfs_size_bytes", "tmpfs options only apply to tmpfs mounts: clear them or set type tmpfs")
		}
		switch m.GetType() {
		case api.Mount_TYPE_BIND:
			if m.GetSource() == "" {
				return fieldErr(f+".source", "required for a bind mount: give the absolute host path")
			}
			if !path.IsAbs(m.GetSource()) {
				return fieldErr(f+".source", "%q is not absolute: a bind mount's source is a host path starting with /", m.GetSource())
			}
		case api.Mount_TYPE_VOLUME:
			if s := m.GetSource(); s != "" && !volumeNameRE.MatchString(s) {
				return fieldErr(f+".source",
					"%q is not a valid volume name: use letters, digits, '_', '.' or '-', starting with a letter or digit (or leave it empty for an anonymous volume; for a host path use type bind)", s)
			}
		case api.Mount_TYPE_TMPFS:
			if m.GetSource() != "" {
				return fieldErr(f+".source", "a tmpfs mount has no source, got %q: remove it", m.GetSource())
			}
			if m.GetTmpfsSizeBytes() < 0 {
				return fieldErr(f+".tmpfs_size_bytes", "must not be negative, got %d (0 means no cap)", m.GetTmpfsSizeBytes())
			}
			if m.GetTmpfsMode() > 0o7777 {
				return fieldErr(f+".tmpfs_mode", "%#o is not a permission mode: use at most 07777", m.GetTmpfsMode())
			}
		}
	}
	return nil
}

// validateHealthcheck checks the health check's test and durations.
func validateHealthcheck(field string, h *api.HealthConfig) error {
	if h == nil {
		return nil
	}
	test := h.GetTest()
	if len(test) > 0 {
		f := field + ".test"
		switch test[0] {
		case "CMD":
			if len(test) < 2 {
				return fieldErr(f, `["CMD"] has no command: write ["CMD", "prog", "arg"...]`)
			}
		case "CMD-SHELL":
			if len(test) != 2 || strings.TrimSpace(test[1]) == "" {
				return fieldErr(f, `CMD-SHELL takes exactly one shell command: write ["CMD-SHELL", "curl -f http://localhost/"]`)
			}
		case "NONE":
			if len(test) != 1 {
				return fieldErr(f, `["NONE"] disables the check and takes no arguments: remove them`)
			}
		default:
			return fieldErr(f, "starts with %q: the first element is CMD, CMD-SHELL or NONE", test[0])
		}
	}
	for _, d := range []struct {
		name string
		v    *int64
	}{{"interval", h.Interval}, {"timeout", h.Timeout}, {"start_period", h.StartPeriod}} {
		if d.v != nil {
			if err := nonNegativeDuration(field+"."+d.name, *d.v); err != nil {
				return err
			}
		}
	}
	return nil
}

// validateFileRefs checks secret and config references: each names what
// it references, and no two become the same file.
func validateFileRefs(field string, c *api.ContainerSpec) error {
	files := map[string]string{}
	claim := func(f, file string) error {
		if prev, dup := files[file]; dup {
			return fieldErr(f, "file %q is also used by %s: give one of them another target.name", file, prev)
		}
		files[file] = f
		return nil
	}
	for i, s := range c.GetSecrets() {
		f := fmt.Sprintf("%s.secrets[%d]", field, i)
		if s.GetSecretName() == "" {
			return fieldErr(f+".secret_name", "required: name the secret")
		}
		if err := validateFileTarget(f+".target", s.GetTarget()); err != nil {
			return err
		}
		if err := claim(f, "secret:"+fileName(s.GetTarget(), s.GetSecretName())); err != nil {
			return err
		}
	}
	for i, cf := range c.GetConfigs() {
		f := fmt.Sprintf("%s.configs[%d]", field, i)
		if cf.GetConfigName() == "" {
			return fieldErr(f+".config_name", "required: name the config")
		}
		if err := validateFileTarget(f+".target", cf.GetTarget()); err != nil {
			return err
		}
		if err := claim(f, "config:"+fileName(cf.GetTarget(), cf.GetConfigName())); err != nil {
			return err
		}
	}
	return nil
}

// fileName is where a secret or config appears: its target name, else
// its own name.
func fileName(t *api.FileTarget, name string) string {
	if t.GetName() != "" {
		return t.GetName()
	}
	return name
}

// validateFileTarget checks a secret's or config's file target.
func validateFileTarget(field string, t *api.FileTarget) error {
	if t.GetMode() > 0o7777 {
		return fieldErr(field+".mode", "%#o is not a permission mode: use at most 07777, e.g. 0444", t.GetMode())
	}
	for _, part := range strings.Split(t.GetName(), "/") {
		if part == ".." {
			return fieldErr(field+".name", "%q climbs out of the secrets directory with '..': remove it", t.GetName())
		}
	}
	return nil
}

// validateResources checks reservations and limits.
func validateResources(field string, r *api.ResourceRequirements) error {
	lim, res := r.GetLimits(), r.GetReservations()
	for _, x := range []struct {
		name string
		v    *api.Resources
	}{{"limits", lim}, {"reservations", res}} {
		f := field + "." + x.name
		if v := x.v.GetNanoCpus(); v < 0 {
			return fieldErr(f+".nano_cpus", "must not be negative, got %d", v)
		}
		if v := x.v.GetMemoryBytes(); v < 0 {
			return fieldErr(f+".memory_bytes", "must not be negative, got %d", v)
		}
		if v := x.v.GetPids(); v < 0 {
			return fieldErr(f+".pids", "must not be negative, got %d", v)
		}
	}
	if res.GetPids() != 0 {
		return fieldErr(field+".reservations.pids", "pids is a limit only: set %s.limits.pids instead", field)
	}
	if l, r := lim.GetNanoCpus(), res.GetNanoCpus(); l > 0 && r > l {
		return fieldErr(field+".limits.nano_cpus", "%d is below the reservation %d: raise the limit or lower the reservation", l, r)
	}
	if l, r := lim.GetMemoryBytes(), res.GetMemoryBytes(); l > 0 && r > l {
		return fieldErr(field+".limits.memory_bytes", "%d is below the reservation %d: raise the limit or lower the reservation", l, r)
	}
	return nil
}

// validateRestart checks the restart policy.
func validateRestart(field string, r *api.RestartPolicy) error {
	if r == nil {
		return nil
	}
	if err := knownEnum(field+".condition", r.GetCondition()); err != nil {
		return err
	}
	if r.Delay != nil {
		if err := nonNegativeDuration(field+".delay", *r.Delay); err != nil {
			return err
		}
	}
	return nonNegativeDuration(field+".window", r.GetWindow())
}

// validatePlacement checks constraints and preferences.
func validatePlacement(field string, p *api.Placement) error {
	for i, s := range p.GetConstraints() {
		if _, err := scheduler.ParseConstraint(s); err != nil {
			return fieldErr(fmt.Sprintf("%s.constraints[%d]", field, i), "%v", err)
		}
	}
	for i, pref := range p.GetPreferences() {
		f := fmt.Sprintf("%s.preferences[%d].spread", field, i)
		s := pref.GetSpread()
		name, ok := strings.CutPrefix(s, scheduler.NodeLabelPrefix)
		if !ok {
			name, ok = strings.CutPrefix(s, scheduler.EngineLabelPrefix)
		}
		if !ok || name == "" {
			return fieldErr(f, "%q: spread over node.labels.NAME or engine.labels.NAME, e.g. node.labels.zone", s)
		}
	}
	for i, pl := range p.GetPlatforms() {
		if pl.GetOs() == "" && pl.GetArchitecture() == "" {
			return fieldErr(fmt.Sprintf("%s.platforms[%d]", field, i), "empty platform: set os and/or architecture, or remove it")
		}
	}
	return nil
}

// validateNetworks checks network attachments.
func validateNetworks(field string, nets []*api.NetworkAttachmentConfig) error {
	seen := map[string]int{}
	for i, n := range nets {
		f := fmt.Sprintf("%s[%d].target", field, i)
		t := n.GetTarget()
		if t == "" {
			return fieldErr(f, "required: name the network (or give its ID)")
		}
		if j, dup := seen[t]; dup {
			return fieldErr(f, "network %q is also networks[%d]: attach a network once", t, j)
		}
		seen[t] = i
		for k, a := range n.GetAliases() {
			if a == "" {
				return fieldErr(fmt.Sprintf("%s[%d].aliases[%d]", field, i, k), "empty alias: remove it")
			}
		}
	}
	return nil
}

// validateMode checks the service mode.
func validateMode(field string, m *api.ServiceMode) error {
	switch mode := m.GetMode().(type) {
	case nil:
		return fieldErr(field, "required: set one of %s", modeNames)
	case *api.ServiceMode_Replicated:
		if mode.Replicated == nil {
			return fieldErr(field+".replicated", "set but empty: give replicas")
		}
	case *api.ServiceMode_Global:
	case *api.ServiceMode_ReplicatedJob:
		j := mode.ReplicatedJob
		total := j.GetTotalCompletions()
		if total == 0 {
			return fieldErr(field+".replicated_job.total_completions", "must be at least 1: how many times the job must complete")
		}
		if j.GetMaxConcurrent() > total {
			return fieldErr(field+".replicated_job.max_concurrent",
				"%d is more than total_completions (%d): at most %d tasks can ever run, so lower max_concurrent to %d or less",
				j.GetMaxConcurrent(), total, total, total)
		}
	case *api.ServiceMode_GlobalJob:
	default:
		return fieldErr(field, "unknown mode %T: set one of %s", mode, modeNames)
	}
	return nil
}

// validateUpdateConfig checks an update or rollback config.
func validateUpdateConfig(field string, u *api.UpdateConfig, rollback bool) error {
	if u == nil {
		return nil
	}
	if err := nonNegativeDuration(field+".delay", u.GetDelay()); err != nil {
		return err
	}
	if err := knownEnum(field+".failure_action", u.GetFailureAction()); err != nil {
		return err
	}
	if rollback && u.GetFailureAction() == api.UpdateConfig_FAILURE_ACTION_ROLLBACK {
		return fieldErr(field+".failure_action", "a rollback cannot roll back: use FAILURE_ACTION_PAUSE or FAILURE_ACTION_CONTINUE")
	}
	if u.Monitor != nil {
		if err := nonNegativeDuration(field+".monitor", *u.Monitor); err != nil {
			return err
		}
	}
	if r := u.GetMaxFailureRatio(); math.IsNaN(float64(r)) || r < 0 || r > 1 {
		return fieldErr(field+".max_failure_ratio", "must be between 0 and 1 (a share of the tasks), got %v", r)
	}
	return knownEnum(field+".order", u.GetOrder())
}

// validateEndpoint checks the endpoint mode and published ports.
func validateEndpoint(field string, e *api.EndpointSpec) error {
	if e == nil {
		return nil
	}
	if err := knownEnum(field+".mode", e.GetMode()); err != nil {
		return err
	}
	type key struct {
		port  uint32
		proto api.PortConfig_Protocol
	}
	published := map[key]int{}
	for i, p := range e.GetPorts() {
		f := fmt.Sprintf("%s.ports[%d]", field, i)
		if err := knownEnum(f+".protocol", p.GetProtocol()); err != nil {
			return err
		}
		if err := knownEnum(f+".publish_mode", p.GetPublishMode()); err != nil {
			return err
		}
		if t := p.GetTargetPort(); t < 1 || t > 65535 {
			return fieldErr(f+".target_port", "must be between 1 and 65535 (the port the container listens on), got %d", t)
		}
		pub := p.GetPublishedPort()
		if pub > 65535 {
			return fieldErr(f+".published_port", "must be between 0 and 65535 (0 lets the system pick), got %d", pub)
		}
		if pub == 0 {
			continue
		}
		k := key{pub, p.GetProtocol()}
		if j, dup := published[k]; dup {
			return fieldErr(f+".published_port", "%d/%s is also published by ports[%d]: publish each port and protocol once",
				pub, protoName(p.GetProtocol()), j)
		}
		published[k] = i
		if e.GetMode() == api.EndpointSpec_MODE_DNSRR && p.GetPublishMode() == api.PortConfig_PUBLISH_MODE_INGRESS {
			return fieldErr(f+".publish_mode",
				"a dnsrr endpoint has no virtual IP for the ingress mesh: publish with PUBLISH_MODE_HOST or use endpoint mode MODE_VIP")
		}
	}
	return nil
}

// protoName is "tcp" or "udp".
func protoName(p api.PortConfig_Protocol) string {
	return strings.ToLower(strings.TrimPrefix(p.String(), "PROTOCOL_"))
}

// nonNegativeDuration checks a duration in nanoseconds.
func nonNegativeDuration(field string, ns int64) error {
	if ns < 0 {
		return fieldErr(field, "must not be negative, got %s", time.Duration(ns))
	}
	return nil
}

// knownEnum checks that an enum field holds a value its type declares.
func knownEnum(field string, e protoreflect.Enum) error {
	values := e.Descriptor().Values()
	if values.ByNumber(e.Number()) != nil {
		return nil
	}
	names := make([]string, values.Len())
	for i := range values.Len() {
		names[i] = string(values.Get(i).Name())
	}
	return fieldErr(field, "unknown value %d: use one of %s", e.Number(), strings.Join(names, ", "))
}

// isSpace reports whitespace in an image reference.
func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'
}
