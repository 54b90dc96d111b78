package main

// The flags that describe a service, and their translation into an
// api.ServiceSpec. The spec stores exactly the user's intent: a field is
// set only when its flag was given, so the system's documented defaults
// apply to everything else. Every value is checked here, before any RPC.
//
// `service create` builds a spec from nothing; `service update`
// (service_update.go) applies the same flags to a copy of the current
// spec (applyServiceOptions), then its -add and -rm forms.

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/shoalhq/shoal/proto/api"
)

// serviceOptions holds the service flags as typed. Values are kept as
// strings and parsed by applyServiceOptions, so that every error names
// its flag and says what is valid.
type serviceOptions struct {
	name, mode, replicas, maxConcurrent string
	labels                              []string

	env, containerLabels                     []string
	workdir, user, hostname, entrypoint      string
	stopGracePeriod, stopSignal              string
	mounts, secrets, configs                 []string
	readOnly, init                           bool
	capAdd, capDrop, sysctls, ulimits        []string
	healthCmd, healthInterval, healthTimeout string
	healthRetries, healthStartPeriod         string
	noHealthcheck                            bool
	reserveCPU, reserveMemory                string
	limitCPU, limitMemory                    string
	restartCondition, restartDelay           string
	restartMaxAttempts, restartWindow        string
	constraints, placementPrefs              []string
	maxReplicasPerNode                       string
	networks, publish                        []string
	endpointMode                             string
	update, rollback                         updateOptions
	withRegistryAuth                         bool
	lookupEnv                                func(string) (string, bool)
}

// updateOptions are the --update-* or --rollback-* flags.
type updateOptions struct {
	parallelism, delay, order, failureAction, monitor, maxFailureRatio, drain string
}

// newServiceOptions returns options that read the environment for
// `--env KEY` without a value.
func newServiceOptions() *serviceOptions {
	return &serviceOptions{lookupEnv: os.LookupEnv}
}

// typedString is a string flag whose help names the kind of value it
// takes (duration, size, ...). The value is parsed later, by
// applyServiceOptions, so that every error reads the same way.
type typedString struct {
	p   *string
	typ string
}

// String returns the value as given.
func (v *typedString) String() string { return *v.p }

// Set stores the value as given.
func (v *typedString) Set(s string) error { *v.p = s; return nil }

// Type is the kind of value shown in the help.
func (v *typedString) Type() string { return v.typ }

// addServiceFlags registers the service flags on fs.
func addServiceFlags(fs *pflag.FlagSet, o *serviceOptions) {
	typed := func(p *string, name, shorthand, typ, usage string) {
		fs.VarP(&typedString{p: p, typ: typ}, name, shorthand, usage)
	}
	typed(&o.name, "name", "", "name", "service name")
	fs.StringVar(&o.mode, "mode", "replicated", "service `mode`: replicated, global, replicated-job or global-job")
	typed(&o.replicas, "replicas", "", "number", "number of tasks (default 1; for replicated-job, the completions wanted)")
	typed(&o.maxConcurrent, "max-concurrent", "", "number", "replicated-job: most tasks running at once (default --replicas)")
	fs.StringArrayVarP(&o.labels, "label", "l", nil, "service label `KEY=VALUE` (repeatable)")

	fs.StringArrayVarP(&o.env, "env", "e", nil, "environment variable `KEY=VALUE` (repeatable; KEY alone takes the value from here)")
	fs.StringArrayVar(&o.containerLabels, "container-label", nil, "container label `KEY=VALUE` (repeatable)")
	typed(&o.workdir, "workdir", "w", "path", "working directory inside the container")
	typed(&o.user, "user", "u", "user", "user name or UID[:GID] the command runs as")
	typed(&o.hostname, "hostname", "", "name", "container hostname")
	typed(&o.entrypoint, "entrypoint", "", "command", "replace the image's entrypoint (a command line, split into words)")
	typed(&o.stopGracePeriod, "stop-grace-period", "", "duration", "how long to wait after the stop signal before killing (default 10s)")
	typed(&o.stopSignal, "stop-signal", "", "signal", "signal that stops the container (default SIGTERM)")
	fs.StringArrayVar(&o.mounts, "mount", nil, "add a `mount`: type=volume|bind|tmpfs,source=..,target=..[,readonly][,tmpfs-size=..] (repeatable)")
	fs.StringArrayVar(&o.secrets, "secret", nil, "give the tasks a `secret`: NAME or source=NAME,target=FILE,... (repeatable)")
	fs.StringArrayVar(&o.configs, "config", nil, "give the tasks a `config`: NAME or source=NAME,target=PATH,... (repeatable)")
	fs.BoolVar(&o.readOnly, "read-only", false, "mount the container's root filesystem read-only")
	fs.BoolVar(&o.init, "init", false, "run an init process in the container that reaps zombies and forwards signals")
	fs.StringArrayVar(&o.capAdd, "cap-add", nil, "add a Linux `capability` (repeatable)")
	fs.StringArrayVar(&o.capDrop, "cap-drop", nil, "drop a Linux `capability` (repeatable)")
	fs.StringArrayVar(&o.sysctls, "sysctl", nil, "namespaced kernel parameter `KEY=VALUE` (repeatable)")
	fs.StringArrayVar(&o.ulimits, "ulimit", nil, "resource limit `NAME=SOFT[:HARD]` (repeatable)")

	typed(&o.healthCmd, "health-cmd", "", "command", "command that checks health, run by the shell")
	typed(&o.healthInterval, "health-interval", "", "duration", "time between health checks")
	typed(&o.healthTimeout, "health-timeout", "", "duration", "longest a health check may take")
	typed(&o.healthRetries, "health-retries", "", "number", "consecutive failures before the task is unhealthy")
	typed(&o.healthStartPeriod, "health-start-period", "", "duration", "grace time after start before failures count")
	fs.BoolVar(&o.noHealthcheck, "no-healthcheck", false, "disable the image's health check")

	typed(&o.reserveCPU, "reserve-cpu", "", "cpus", "CPUs reserved for each task (e.g. 0.5)")
	typed(&o.reserveMemory, "reserve-memory", "", "size", "memory reserved for each task (e.g. 64M, 1g)")
	typed(&o.limitCPU, "limit-cpu", "", "cpus", "most CPUs a task may use")
	typed(&o.limitMemory, "limit-memory", "", "size", "most memory a task may use")

	typed(&o.restartCondition, "restart-condition", "", "condition", "when to replace a task that ended: none, on-failure or any (default any)")
	typed(&o.restartDelay, "restart-delay", "", "duration", "wait between restarts (default 5s)")
	typed(&o.restartMaxAttempts, "restart-max-attempts", "", "number", "most restarts within the window (0 = unlimited)")
	typed(&o.restartWindow, "restart-window", "", "duration", "window over which restarts count")

	fs.StringArrayVar(&o.constraints, "constraint", nil, "placement `constraint`, e.g. node.labels.zone==eu (repeatable)")
	fs.StringArrayVar(&o.placementPrefs, "placement-pref", nil, "placement preference `spread=ATTRIBUTE` (repeatable)")
	typed(&o.maxReplicasPerNode, "replicas-max-per-node", "", "number", "most tasks of the service on one node (0 = no cap)")

	fs.StringArrayVar(&o.networks, "network", nil, "attach to a `network`: NAME or name=NAME,alias=ALIAS (repeatable)")
	fs.StringArrayVarP(&o.publish, "publish", "p", nil, "publish a `port`: PUBLISHED:TARGET[/udp] or published=..,target=..[,protocol=udp][,mode=host] (repeatable)")
	typed(&o.endpointMode, "endpoint-mode", "", "mode", "how clients reach the tasks: vip (default) or dnsrr")

	addUpdateFlags(typed, &o.update, "update", "an update")
	addUpdateFlags(typed, &o.rollback, "rollback", "a rollback")
	fs.BoolVar(&o.withRegistryAuth, "with-registry-auth", false, "send the image registry's credential (from $"+configEnv+", else ~/.docker/config.json) to the nodes")
}

// addUpdateFlags registers the --PREFIX-* flags of an update config with
// the given registration function.
func addUpdateFlags(typed func(p *string, name, shorthand, typ, usage string), u *updateOptions, prefix, what string) {
	actions := "pause, continue or rollback"
	if prefix == "rollback" {
		actions = "pause or continue"
	}
	typed(&u.parallelism, prefix+"-parallelism", "", "number", "tasks replaced at once in "+what+" (0 = all)")
	typed(&u.delay, prefix+"-delay", "", "duration", "wait between batches of "+what)
	typed(&u.order, prefix+"-order", "", "order", "order of "+what+": stop-first or start-first")
	typed(&u.failureAction, prefix+"-failure-action", "", "action", "what to do when "+what+" fails: "+actions)
	typed(&u.monitor, prefix+"-monitor", "", "duration", "how long to watch each new task in "+what)
	typed(&u.maxFailureRatio, prefix+"-max-failure-ratio", "", "ratio", "share of tasks that may fail in "+what+", from 0 to 1")
	typed(&u.drain, prefix+"-drain", "", "duration", "how long a task replaced in "+what+" keeps serving the requests it holds, out of the VIP and DNS, before its stop signal")
}

// buildServiceSpec returns the spec of a new service running image with
// args, from the given flags; changed reports whether a flag was given.
func buildServiceSpec(o *serviceOptions, changed func(string) bool, image string, args []string) (*api.ServiceSpec, error) {
	if image == "" {
		return nil, fmt.Errorf("a service needs an IMAGE")
	}
	spec := &api.ServiceSpec{Task: &api.TaskSpec{Container: &api.ContainerSpec{Image: image}}}
	if len(args) > 0 {
		spec.Task.Container.Args = args
	}
	if err := applyServiceOptions(spec, o, changed); err != nil {
		return nil, err
	}
	if spec.Mode == nil {
		spec.Mode = &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 1}}}
	}
	return spec, nil
}

// applyServiceOptions sets in spec what the given flags say; repeatable
// flags replace the whole list. spec.Task and spec.Task.Container must be
// set.
func applyServiceOptions(spec *api.ServiceSpec, o *serviceOptions, changed func(string) bool) error {
	steps := []func(*api.ServiceSpec, *serviceOptions, func(string) bool) error{
		applyAnnotations, applyMode, applyContainer, applyHealth, applyResources,
		applyRestart, applyPlacement, applyNetworks, applyEndpoint, applyRegistryAuth,
	}
	for _, step := range steps {
		if err := step(spec, o, changed); err != nil {
			return err
		}
	}
	var err error
	if spec.Update, err = applyUpdateConfig(spec.Update, &o.update, "update", changed); err != nil {
		return err
	}
	spec.Rollback, err = applyUpdateConfig(spec.Rollback, &o.rollback, "rollback", changed)
	return err
}

// anyChanged reports whether any of the flags was given.
func anyChanged(changed func(string) bool, flags ...string) bool {
	for _, f := range flags {
		if changed(f) {
			return true
		}
	}
	return false
}

// parseLabels reads KEY=VALUE (or KEY) values into a map.
func parseLabels(flag string, values []string) (map[string]string, error) {
	if len(values) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(values))
	for _, s := range values {
		k, v, err := parseKeyValue(flag, s, true)
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, nil
}

// applyAnnotations sets the name and the service labels.
func applyAnnotations(spec *api.ServiceSpec, o *serviceOptions, changed func(string) bool) error {
	if !anyChanged(changed, "name", "label") {
		return nil
	}
	if spec.Annotations == nil {
		spec.Annotations = &api.Annotations{}
	}
	if changed("name") {
		if o.name == "" || strings.ContainsAny(o.name, " \t/") {
			return flagError("name", o.name, "a service name is a non-empty word without spaces or slashes")
		}
		spec.Annotations.Name = o.name
	}
	if changed("label") {
		labels, err := parseLabels("label", o.labels)
		if err != nil {
			return err
		}
		spec.Annotations.Labels = labels
	}
	return nil
}

// modeNames are the values of --mode.
var modeNames = []string{"replicated", "global", "replicated-job", "global-job"}

// applyMode sets the service mode from --mode, --replicas and
// --max-concurrent. Jobs default to one completion, at most --replicas
// at once.
func applyMode(spec *api.ServiceSpec, o *serviceOptions, changed func(string) bool) error {
	if !anyChanged(changed, "mode", "replicas", "max-concurrent") {
		return nil
	}
	mode, err := parseEnum("mode", o.mode, modeNames, modeNames)
	if err != nil {
		return err
	}
	var replicas, maxConcurrent uint64 = 1, 0
	if changed("replicas") {
		if mode == "global" || mode == "global-job" {
			return fmt.Errorf("--replicas can only be used with --mode replicated or replicated-job (the mode is %s)", mode)
		}
		if replicas, err = parseUint("replicas", o.replicas, 64); err != nil {
			return err
		}
	}
	if changed("max-concurrent") {
		if mode != "replicated-job" {
			return fmt.Errorf("--max-concurrent can only be used with --mode replicated-job (the mode is %s)", mode)
		}
		if maxConcurrent, err = parseUint("max-concurrent", o.maxConcurrent, 64); err != nil {
			return err
		}
	} else {
		maxConcurrent = replicas
	}
	switch mode {
	case "replicated":
		spec.Mode = &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: replicas}}}
	case "global":
		spec.Mode = &api.ServiceMode{Mode: &api.ServiceMode_Global{Global: &api.Global{}}}
	case "replicated-job":
		spec.Mode = &api.ServiceMode{Mode: &api.ServiceMode_ReplicatedJob{ReplicatedJob: &api.ReplicatedJob{
			MaxConcurrent: maxConcurrent, TotalCompletions: replicas}}}
	case "global-job":
		spec.Mode = &api.ServiceMode{Mode: &api.ServiceMode_GlobalJob{GlobalJob: &api.GlobalJob{}}}
	}
	return nil
}

// applyUpdateConfig returns cfg (or a new config) with the --PREFIX-*
// flags applied; nil when cfg is nil and none was given.
func applyUpdateConfig(cfg *api.UpdateConfig, u *updateOptions, prefix string, changed func(string) bool) (*api.UpdateConfig, error) {
	flag := func(name string) string { return prefix + "-" + name }
	if !anyChanged(changed, flag("parallelism"), flag("delay"), flag("order"), flag("failure-action"), flag("monitor"), flag("max-failure-ratio"), flag("drain")) {
		return cfg, nil
	}
	if cfg == nil {
		cfg = &api.UpdateConfig{}
	}
	if changed(flag("parallelism")) {
		n, err := parseUint(flag("parallelism"), u.parallelism, 64)
		if err != nil {
			return nil, err
		}
		cfg.Parallelism = &n
	}
	if changed(flag("delay")) {
		d, err := parseDuration(flag("delay"), u.delay)
		if err != nil {
			return nil, err
		}
		cfg.Delay = d
	}
	if changed(flag("order")) {
		order, err := parseEnum(flag("order"), u.order, []string{"stop-first", "start-first"},
			[]api.UpdateConfig_Order{api.UpdateConfig_ORDER_STOP_FIRST, api.UpdateConfig_ORDER_START_FIRST})
		if err != nil {
			return nil, err
		}
		cfg.Order = order
	}
	if changed(flag("failure-action")) {
		names := []string{"pause", "continue", "rollback"}
		values := []api.UpdateConfig_FailureAction{api.UpdateConfig_FAILURE_ACTION_PAUSE,
			api.UpdateConfig_FAILURE_ACTION_CONTINUE, api.UpdateConfig_FAILURE_ACTION_ROLLBACK}
		if prefix == "rollback" {
			names, values = names[:2], values[:2]
		}
		action, err := parseEnum(flag("failure-action"), u.failureAction, names, values)
		if err != nil {
			return nil, err
		}
		cfg.FailureAction = action
	}
	if changed(flag("monitor")) {
		d, err := parseDuration(flag("monitor"), u.monitor)
		if err != nil {
			return nil, err
		}
		cfg.Monitor = &d
	}
	if changed(flag("max-failure-ratio")) {
		r, err := parseRatio(flag("max-failure-ratio"), u.maxFailureRatio)
		if err != nil {
			return nil, err
		}
		cfg.MaxFailureRatio = r
	}
	if changed(flag("drain")) {
		d, err := parseDuration(flag("drain"), u.drain)
		if err != nil {
			return nil, err
		}
		cfg.Drain = d
	}
	return cfg, nil
}
