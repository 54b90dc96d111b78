package main

// The parts of applyServiceOptions that shape the task template: the
// container, its health check, resources, restart policy, placement,
// networks, and the service endpoint.

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/shoalhq/shoal/proto/api"
)

// capabilityPattern is a capability name such as NET_ADMIN, CAP_SYS_TIME or ALL.
var capabilityPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

// applyContainer sets the container fields other than image and args.
func applyContainer(spec *api.ServiceSpec, o *serviceOptions, changed func(string) bool) error {
	c := spec.Task.Container
	if changed("env") {
		env, err := parseEnv(o)
		if err != nil {
			return err
		}
		c.Env = env
	}
	if changed("container-label") {
		labels, err := parseLabels("container-label", o.containerLabels)
		if err != nil {
			return err
		}
		c.Labels = labels
	}
	if changed("workdir") {
		if !strings.HasPrefix(o.workdir, "/") {
			return flagError("workdir", o.workdir, "must be an absolute path")
		}
		c.Dir = o.workdir
	}
	if changed("user") {
		c.User = o.user
	}
	if changed("hostname") {
		c.Hostname = o.hostname
	}
	if changed("entrypoint") {
		words, err := splitWords("entrypoint", o.entrypoint)
		if err != nil {
			return err
		}
		c.Command = words
	}
	if changed("stop-grace-period") {
		d, err := parseDuration("stop-grace-period", o.stopGracePeriod)
		if err != nil {
			return err
		}
		c.StopGracePeriod = &d
	}
	if changed("stop-signal") {
		if o.stopSignal == "" || strings.ContainsAny(o.stopSignal, " \t") {
			return flagError("stop-signal", o.stopSignal, "expected a signal name or number (examples: SIGTERM, SIGQUIT, 3)")
		}
		c.StopSignal = o.stopSignal
	}
	if changed("read-only") {
		c.ReadOnly = o.readOnly
	}
	if changed("init") {
		c.Init = o.init
	}
	if err := applyContainerLists(c, o, changed); err != nil {
		return err
	}
	return nil
}

// applyContainerLists sets the container's mounts, secrets, configs,
// capabilities, sysctls and ulimits.
func applyContainerLists(c *api.ContainerSpec, o *serviceOptions, changed func(string) bool) error {
	if changed("mount") {
		c.Mounts = nil
		for _, s := range o.mounts {
			m, err := parseMount(s)
			if err != nil {
				return err
			}
			c.Mounts = append(c.Mounts, m)
		}
	}
	if changed("secret") {
		c.Secrets = nil
		for _, s := range o.secrets {
			r, err := parseFileRef("secret", s)
			if err != nil {
				return err
			}
			c.Secrets = append(c.Secrets, &api.SecretReference{SecretName: r.source, Target: r.target})
		}
	}
	if changed("config") {
		c.Configs = nil
		for _, s := range o.configs {
			r, err := parseFileRef("config", s)
			if err != nil {
				return err
			}
			c.Configs = append(c.Configs, &api.ConfigReference{ConfigName: r.source, Target: r.target})
		}
	}
	for _, f := range []struct {
		flag   string
		values []string
		dst    *[]string
	}{{"cap-add", o.capAdd, &c.CapAdd}, {"cap-drop", o.capDrop, &c.CapDrop}} {
		if !changed(f.flag) {
			continue
		}
		*f.dst = nil
		for _, v := range f.values {
			if !capabilityPattern.MatchString(v) {
				return flagError(f.flag, v, "expected a capability name (examples: NET_ADMIN, SYS_TIME, ALL)")
			}
			*f.dst = append(*f.dst, v)
		}
	}
	if changed("sysctl") {
		c.Sysctls = make(map[string]string, len(o.sysctls))
		for _, s := range o.sysctls {
			k, v, err := parseKeyValue("sysctl", s, false)
			if err != nil {
				return err
			}
			c.Sysctls[k] = v
		}
	}
	if changed("ulimit") {
		c.Ulimits = nil
		for _, s := range o.ulimits {
			u, err := parseUlimit(s)
			if err != nil {
				return err
			}
			c.Ulimits = append(c.Ulimits, u)
		}
	}
	return nil
}

// parseEnv reads --env values; KEY alone takes its value from this
// process's environment, as docker does.
func parseEnv(o *serviceOptions) ([]string, error) {
	env := make([]string, 0, len(o.env))
	for _, s := range o.env {
		k, _, hasValue := strings.Cut(s, "=")
		if k == "" || strings.ContainsAny(k, " \t") {
			return nil, flagError("env", s, "expected KEY=VALUE or KEY")
		}
		if !hasValue {
			v, ok := o.lookupEnv(k)
			if !ok {
				return nil, flagError("env", s, "%s is not set in this environment; give %s=VALUE", k, k)
			}
			s = k + "=" + v
		}
		env = append(env, s)
	}
	return env, nil
}

// applyHealth sets the container's health check from --health-* and
// --no-healthcheck.
func applyHealth(spec *api.ServiceSpec, o *serviceOptions, changed func(string) bool) error {
	tuning := []string{"health-interval", "health-timeout", "health-retries", "health-start-period"}
	if !anyChanged(changed, append(tuning, "health-cmd", "no-healthcheck")...) {
		return nil
	}
	c := spec.Task.Container
	if changed("no-healthcheck") && o.noHealthcheck {
		if anyChanged(changed, append(tuning, "health-cmd")...) {
			return fmt.Errorf("--no-healthcheck conflicts with --health-* options: give one or the other")
		}
		c.Healthcheck = &api.HealthConfig{Test: []string{"NONE"}}
		return nil
	}
	if !anyChanged(changed, append(tuning, "health-cmd")...) {
		return nil // only --no-healthcheck=false
	}
	if c.Healthcheck == nil {
		c.Healthcheck = &api.HealthConfig{}
	}
	h := c.Healthcheck
	if changed("health-cmd") {
		if strings.TrimSpace(o.healthCmd) == "" {
			return flagError("health-cmd", o.healthCmd, "expected a command (example: \"curl -f http://localhost/\")")
		}
		h.Test = []string{"CMD-SHELL", o.healthCmd}
	}
	for _, d := range []struct {
		flag, value string
		dst         **int64
	}{
		{"health-interval", o.healthInterval, &h.Interval},
		{"health-timeout", o.healthTimeout, &h.Timeout},
		{"health-start-period", o.healthStartPeriod, &h.StartPeriod},
	} {
		if !changed(d.flag) {
			continue
		}
		ns, err := parseDuration(d.flag, d.value)
		if err != nil {
			return err
		}
		*d.dst = &ns
	}
	if changed("health-retries") {
		n, err := parseUint("health-retries", o.healthRetries, 32)
		if err != nil {
			return err
		}
		r := uint32(n)
		h.Retries = &r
	}
	return nil
}

// applyResources sets reservations and limits from --reserve-* and --limit-*.
func applyResources(spec *api.ServiceSpec, o *serviceOptions, changed func(string) bool) error {
	for _, r := range []struct {
		cpuFlag, cpu, memFlag, mem string
		dst                        func(*api.ResourceRequirements) **api.Resources
	}{
		{"reserve-cpu", o.reserveCPU, "reserve-memory", o.reserveMemory,
			func(rr *api.ResourceRequirements) **api.Resources { return &rr.Reservations }},
		{"limit-cpu", o.limitCPU, "limit-memory", o.limitMemory,
			func(rr *api.ResourceRequirements) **api.Resources { return &rr.Limits }},
	} {
		if !anyChanged(changed, r.cpuFlag, r.memFlag) {
			continue
		}
		if spec.Task.Resources == nil {
			spec.Task.Resources = &api.ResourceRequirements{}
		}
		dst := r.dst(spec.Task.Resources)
		if *dst == nil {
			*dst = &api.Resources{}
		}
		var err error
		if changed(r.cpuFlag) {
			if (*dst).NanoCpus, err = parseNanoCPUs(r.cpuFlag, r.cpu); err != nil {
				return err
			}
		}
		if changed(r.memFlag) {
			if (*dst).MemoryBytes, err = parseMemory(r.memFlag, r.mem); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyRestart sets the restart policy from --restart-*.
func applyRestart(spec *api.ServiceSpec, o *serviceOptions, changed func(string) bool) error {
	if !anyChanged(changed, "restart-condition", "restart-delay", "restart-max-attempts", "restart-window") {
		return nil
	}
	if spec.Task.Restart == nil {
		spec.Task.Restart = &api.RestartPolicy{}
	}
	r := spec.Task.Restart
	var err error
	if changed("restart-condition") {
		r.Condition, err = parseEnum("restart-condition", o.restartCondition, []string{"none", "on-failure", "any"},
			[]api.RestartPolicy_Condition{api.RestartPolicy_CONDITION_NONE, api.RestartPolicy_CONDITION_ON_FAILURE, api.RestartPolicy_CONDITION_ANY})
		if err != nil {
			return err
		}
	}
	if changed("restart-delay") {
		d, err := parseDuration("restart-delay", o.restartDelay)
		if err != nil {
			return err
		}
		r.Delay = &d
	}
	if changed("restart-max-attempts") {
		if r.MaxAttempts, err = parseUint("restart-max-attempts", o.restartMaxAttempts, 64); err != nil {
			return err
		}
	}
	if changed("restart-window") {
		if r.Window, err = parseDuration("restart-window", o.restartWindow); err != nil {
			return err
		}
	}
	return nil
}

// applyPlacement sets constraints, preferences and the per-node cap.
func applyPlacement(spec *api.ServiceSpec, o *serviceOptions, changed func(string) bool) error {
	if !anyChanged(changed, "constraint", "placement-pref", "replicas-max-per-node") {
		return nil
	}
	if spec.Task.Placement == nil {
		spec.Task.Placement = &api.Placement{}
	}
	p := spec.Task.Placement
	if changed("constraint") {
		p.Constraints = nil
		for _, s := range o.constraints {
			c, err := parseConstraint(s)
			if err != nil {
				return err
			}
			p.Constraints = append(p.Constraints, c)
		}
	}
	if changed("placement-pref") {
		p.Preferences = nil
		for _, s := range o.placementPrefs {
			pref, err := parsePlacementPref(s)
			if err != nil {
				return err
			}
			p.Preferences = append(p.Preferences, pref)
		}
	}
	if changed("replicas-max-per-node") {
		if spec.GetMode().GetGlobal() != nil || spec.GetMode().GetGlobalJob() != nil {
			return fmt.Errorf("--replicas-max-per-node can only be used with --mode replicated or replicated-job")
		}
		n, err := parseUint("replicas-max-per-node", o.maxReplicasPerNode, 64)
		if err != nil {
			return err
		}
		p.MaxReplicas = n
	}
	return nil
}

// applyNetworks sets the networks the tasks attach to.
func applyNetworks(spec *api.ServiceSpec, o *serviceOptions, changed func(string) bool) error {
	if !changed("network") {
		return nil
	}
	spec.Task.Networks = nil
	for _, s := range o.networks {
		n, err := parseNetwork(s)
		if err != nil {
			return err
		}
		spec.Task.Networks = append(spec.Task.Networks, n)
	}
	return nil
}

// applyEndpoint sets the published ports and the endpoint mode.
func applyEndpoint(spec *api.ServiceSpec, o *serviceOptions, changed func(string) bool) error {
	if !anyChanged(changed, "publish", "endpoint-mode") {
		return nil
	}
	if spec.Endpoint == nil {
		spec.Endpoint = &api.EndpointSpec{}
	}
	e := spec.Endpoint
	if changed("endpoint-mode") {
		mode, err := parseEnum("endpoint-mode", o.endpointMode, []string{"vip", "dnsrr"},
			[]api.EndpointSpec_Mode{api.EndpointSpec_MODE_VIP, api.EndpointSpec_MODE_DNSRR})
		if err != nil {
			return err
		}
		e.Mode = mode
	}
	if changed("publish") {
		e.Ports = nil
		for _, s := range o.publish {
			p, err := parsePublish(s)
			if err != nil {
				return err
			}
			e.Ports = append(e.Ports, p)
		}
	}
	for _, p := range e.Ports {
		if e.Mode == api.EndpointSpec_MODE_DNSRR && p.PublishMode == api.PortConfig_PUBLISH_MODE_INGRESS {
			return fmt.Errorf("--endpoint-mode dnsrr cannot publish ports in ingress mode (port %d): publish them with mode=host", p.TargetPort)
		}
	}
	return nil
}
