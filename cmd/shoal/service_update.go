package main

// `shoal service update` and `shoal service rollback`: change a running
// service and follow the rolling update until every slot runs the new
// spec, or the update pauses or rolls back.
//
// An update reads the service, applies to a copy of its spec only the
// flags the user gave (the create flags, through applyServiceOptions,
// then the --X-rm and --X-add forms), and writes it with the version it
// read, reading again and retrying when the service changed in between.
// A spec that comes out unchanged is not written, unless --force.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// updateFlags are the flags that only `service update` has: the image and
// arguments (positional in create), the -add/-rm forms of list flags,
// --force and --rollback.
type updateFlags struct {
	image, args string

	envAdd, envRm                       []string
	labelAdd, labelRm                   []string
	containerLabelAdd, containerLabelRm []string
	publishAdd, publishRm               []string
	networkAdd, networkRm               []string
	mountAdd, mountRm                   []string
	secretAdd, secretRm                 []string
	configAdd, configRm                 []string
	constraintAdd, constraintRm         []string

	force, rollback bool
}

// addFlags registers the update-only flags.
func (u *updateFlags) addFlags(fs *pflag.FlagSet) {
	fs.Var(&typedString{p: &u.image, typ: "image"}, "image", "run this image (NAME[:TAG][@DIGEST])")
	fs.Var(&typedString{p: &u.args, typ: "command"}, "args", "replace the command and its arguments (a command line, split into words)")
	lists := []struct {
		dst         *[]string
		name, usage string
	}{
		{&u.envAdd, "env-add", "add or replace an environment variable `KEY=VALUE` (repeatable; KEY alone takes the value from here)"},
		{&u.envRm, "env-rm", "remove an environment variable `KEY`"},
		{&u.labelAdd, "label-add", "add or replace a service label `KEY=VALUE`"},
		{&u.labelRm, "label-rm", "remove a service label `KEY`"},
		{&u.containerLabelAdd, "container-label-add", "add or replace a container label `KEY=VALUE`"},
		{&u.containerLabelRm, "container-label-rm", "remove a container label `KEY`"},
		{&u.publishAdd, "publish-add", "publish a `port` as --publish does, replacing one with the same published port"},
		{&u.publishRm, "publish-rm", "stop publishing a `port`: TARGET[/PROTOCOL], or PUBLISHED:TARGET[/PROTOCOL]"},
		{&u.networkAdd, "network-add", "attach to a `network` as --network does"},
		{&u.networkRm, "network-rm", "detach from a `network` (name or ID)"},
		{&u.mountAdd, "mount-add", "add a `mount` as --mount does, replacing one with the same target"},
		{&u.mountRm, "mount-rm", "remove the mount at this `target` path"},
		{&u.secretAdd, "secret-add", "give the tasks a `secret` as --secret does, replacing one of the same name"},
		{&u.secretRm, "secret-rm", "take a `secret` away by name"},
		{&u.configAdd, "config-add", "give the tasks a `config` as --config does, replacing one of the same name"},
		{&u.configRm, "config-rm", "take a `config` away by name"},
		{&u.constraintAdd, "constraint-add", "add a placement `constraint`"},
		{&u.constraintRm, "constraint-rm", "remove a placement `constraint`, written as it was added"},
	}
	for _, l := range lists {
		usage := l.usage
		if !strings.Contains(usage, "(repeatable") {
			usage += " (repeatable)"
		}
		fs.StringArrayVar(l.dst, l.name, nil, usage)
	}
	fs.BoolVar(&u.force, "force", false, "replace the tasks even when the spec does not change")
	fs.BoolVar(&u.rollback, "rollback", false, "go back to the spec before the last update (no other spec flag may be given)")
}

// modeFlags are handled by applyUpdateMode, not applyServiceOptions:
// an update keeps the mode and only rescales it.
var modeFlags = []string{"name", "mode", "replicas", "max-concurrent"}

// notMode hides modeFlags from a changed predicate.
func notMode(changed func(string) bool) func(string) bool {
	return func(flag string) bool { return !slices.Contains(modeFlags, flag) && changed(flag) }
}

// checkUpdateFlags refuses what an update cannot do, and checks every
// value by applying the flags to a made-up spec, so that a mistake is
// reported before anything is sent. global holds the flags the command
// inherits, which change nothing in the spec.
func checkUpdateFlags(o *serviceOptions, u *updateFlags, fs, global *pflag.FlagSet) error {
	changed := fs.Changed
	if changed("name") {
		return fmt.Errorf("--name cannot be given to shoal service update: service names cannot be changed; to rename, create a new service and remove this one")
	}
	if changed("mode") {
		return fmt.Errorf("--mode cannot be given to shoal service update: a service's mode cannot change; create a new service and remove this one")
	}
	var given []string
	fs.Visit(func(f *pflag.Flag) {
		if global.Lookup(f.Name) == nil && f.Name != "detach" && f.Name != "wait-timeout" && f.Name != "quiet" {
			given = append(given, f.Name)
		}
	})
	if u.rollback {
		if len(given) > 1 {
			return fmt.Errorf("--rollback goes back to the previous spec: it cannot be combined with --%s", firstOther(given, "rollback"))
		}
		return nil
	}
	if len(given) == 0 {
		return fmt.Errorf("nothing to change: give the flags to change (see shoal service update --help), --force to replace the tasks, or --rollback")
	}
	dry := *o
	dry.withRegistryAuth = false // reads the credential file: done once, for real
	mode := replicated1()
	if changed("max-concurrent") {
		mode = &api.ServiceMode{Mode: &api.ServiceMode_ReplicatedJob{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: 1, TotalCompletions: 1}}}
	}
	spec := &api.ServiceSpec{Task: &api.TaskSpec{Container: &api.ContainerSpec{Image: "image"}}, Mode: mode}
	return applyUpdate(spec, "SERVICE", &dry, u, changed, nil)
}

// replicated1 is the mode of a one-replica service.
func replicated1() *api.ServiceMode {
	return &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 1}}}
}

// firstOther is the first of names other than skip.
func firstOther(names []string, skip string) string {
	for _, n := range names {
		if n != skip {
			return n
		}
	}
	return ""
}

// networkResolver turns a network name or ID prefix into the network's
// ID, as the manager stores it in a spec; it returns "" when it cannot.
type networkResolver func(ref string) string

// applyUpdate applies the given flags to spec, the current spec of the
// service called name: first the create flags (repeatable ones replace
// their list), then the --X-rm forms, then the --X-add forms. resolve
// may be nil.
func applyUpdate(spec *api.ServiceSpec, name string, o *serviceOptions, u *updateFlags, changed func(string) bool, resolve networkResolver) error {
	if spec.Task == nil {
		spec.Task = &api.TaskSpec{}
	}
	if spec.Task.Container == nil {
		spec.Task.Container = &api.ContainerSpec{}
	}
	c := spec.Task.Container
	if changed("image") {
		if u.image == "" || strings.ContainsAny(u.image, " \t") {
			return flagError("image", u.image, "expected an image reference (examples: nginx:1.25, registry.example.com/shop/api:2)")
		}
		c.Image = u.image
	}
	if changed("args") {
		words, err := splitWords("args", u.args)
		if err != nil {
			return err
		}
		c.Args = words
	}
	if err := applyUpdateMode(spec, name, o, changed); err != nil {
		return err
	}
	if err := applyServiceOptions(spec, o, notMode(changed)); err != nil {
		return err
	}
	if err := applyEnvChanges(c, o, u); err != nil {
		return err
	}
	labels, err := editLabels(spec.GetAnnotations().GetLabels(), "label-add", u.labelAdd, u.labelRm)
	if err != nil {
		return err
	}
	if len(labels) > 0 && spec.Annotations == nil {
		spec.Annotations = &api.Annotations{}
	}
	if spec.Annotations != nil {
		spec.Annotations.Labels = labels
	}
	if c.Labels, err = editLabels(c.Labels, "container-label-add", u.containerLabelAdd, u.containerLabelRm); err != nil {
		return err
	}
	if err := applyPortChanges(spec, u); err != nil {
		return err
	}
	if err := applyNetworkChanges(spec.Task, u, resolve); err != nil {
		return err
	}
	return applyContainerListChanges(spec.Task, u)
}

// applyUpdateMode applies --replicas (as `service scale` does) and
// --max-concurrent to the service's mode, which an update cannot change.
func applyUpdateMode(spec *api.ServiceSpec, name string, o *serviceOptions, changed func(string) bool) error {
	if changed("replicas") {
		n, err := parseUint("replicas", o.replicas, 64)
		if err != nil {
			return err
		}
		if _, err := setReplicas(name, spec, n); err != nil {
			return fmt.Errorf("--replicas: %w", err)
		}
	}
	if changed("max-concurrent") {
		n, err := parseUint("max-concurrent", o.maxConcurrent, 64)
		if err != nil {
			return err
		}
		j := spec.GetMode().GetReplicatedJob()
		if j == nil {
			return fmt.Errorf("--max-concurrent can only be given for a replicated job, and %s is a %s service", name, modeNameOf(spec.GetMode()))
		}
		j.MaxConcurrent = n
	}
	return nil
}

// modeNameOf names a mode as --mode does.
func modeNameOf(m *api.ServiceMode) string {
	switch {
	case m.GetGlobal() != nil:
		return "global"
	case m.GetReplicatedJob() != nil:
		return "replicated-job"
	case m.GetGlobalJob() != nil:
		return "global-job"
	}
	return "replicated"
}

// applyEnvChanges removes the --env-rm keys, then sets the --env-add
// variables, replacing a variable of the same key in place.
func applyEnvChanges(c *api.ContainerSpec, o *serviceOptions, u *updateFlags) error {
	if len(u.envAdd)+len(u.envRm) == 0 {
		return nil
	}
	keyOf := func(kv string) string { k, _, _ := strings.Cut(kv, "="); return k }
	for _, k := range u.envRm {
		if k == "" || strings.ContainsAny(k, " \t=") {
			return flagError("env-rm", k, "expected a variable name KEY")
		}
		c.Env = slices.DeleteFunc(c.Env, func(kv string) bool { return keyOf(kv) == k })
	}
	add := *o
	add.env = u.envAdd
	vars, err := parseEnv(&add)
	if err != nil {
		return renameFlag(err, "env", "env-add")
	}
	for _, kv := range vars {
		if i := slices.IndexFunc(c.Env, func(e string) bool { return keyOf(e) == keyOf(kv) }); i >= 0 {
			c.Env[i] = kv
		} else {
			c.Env = append(c.Env, kv)
		}
	}
	return nil
}

// renameFlag rewrites "for --from:" in an error from a parser shared
// with create to name the flag the user gave.
func renameFlag(err error, from, to string) error {
	return errors.New(strings.Replace(err.Error(), "for --"+from+":", "for --"+to+":", 1))
}

// editLabels returns labels without the rm keys and with the add
// KEY=VALUE pairs; addFlag names the flag in errors.
func editLabels(labels map[string]string, addFlag string, add, rm []string) (map[string]string, error) {
	if len(add)+len(rm) == 0 {
		return labels, nil
	}
	for _, k := range rm {
		delete(labels, k)
	}
	added, err := parseLabels(addFlag, add)
	if err != nil {
		return nil, err
	}
	if labels == nil && len(added) > 0 {
		labels = map[string]string{}
	}
	for k, v := range added {
		labels[k] = v
	}
	if len(labels) == 0 {
		return nil, nil
	}
	return labels, nil
}

// upsert puts item in place of the first entry of list that is the
// same (dropping any other), or appends it: replacing an entry keeps
// the order, so an add that repeats an entry changes nothing.
func upsert[T any](list []T, item T, same func(T) bool) []T {
	i := slices.IndexFunc(list, same)
	if i < 0 {
		return append(list, item)
	}
	list[i] = item
	return append(list[:i+1], slices.DeleteFunc(list[i+1:], same)...)
}

// applyPortChanges removes the --publish-rm ports, then adds the
// --publish-add ones, each replacing a port published on the same port
// and protocol (or, unpublished, with the same target).
func applyPortChanges(spec *api.ServiceSpec, u *updateFlags) error {
	if len(u.publishAdd)+len(u.publishRm) == 0 {
		return nil
	}
	if spec.Endpoint == nil && len(u.publishAdd) > 0 {
		spec.Endpoint = &api.EndpointSpec{}
	}
	e := spec.Endpoint // nil only when nothing is added
	for _, s := range u.publishRm {
		if e == nil {
			if _, err := parsePublish(s); err != nil {
				return renameFlag(err, "publish", "publish-rm")
			}
			continue
		}
		rm, err := parsePublish(s)
		if err != nil {
			return renameFlag(err, "publish", "publish-rm")
		}
		e.Ports = slices.DeleteFunc(e.Ports, func(p *api.PortConfig) bool {
			return p.TargetPort == rm.TargetPort && p.Protocol == rm.Protocol &&
				(rm.PublishedPort == 0 || p.PublishedPort == rm.PublishedPort)
		})
	}
	for _, s := range u.publishAdd {
		add, err := parsePublish(s)
		if err != nil {
			return renameFlag(err, "publish", "publish-add")
		}
		e.Ports = upsert(e.Ports, add, func(p *api.PortConfig) bool {
			if p.Protocol != add.Protocol {
				return false
			}
			if add.PublishedPort != 0 {
				return p.PublishedPort == add.PublishedPort
			}
			return p.PublishedPort == 0 && p.TargetPort == add.TargetPort
		})
	}
	for _, p := range e.Ports {
		if e.Mode == api.EndpointSpec_MODE_DNSRR && p.PublishMode == api.PortConfig_PUBLISH_MODE_INGRESS {
			return fmt.Errorf("--endpoint-mode dnsrr cannot publish ports in ingress mode (port %d): publish them with mode=host", p.TargetPort)
		}
	}
	if e != nil && len(e.Ports) == 0 {
		e.Ports = nil
	}
	return nil
}

// applyNetworkChanges detaches the --network-rm networks and attaches
// the --network-add ones, replacing an attachment to the same network.
// The manager stores networks by ID; a name given here is looked up
// (resolve) when it matches no target as written.
func applyNetworkChanges(t *api.TaskSpec, u *updateFlags, resolve networkResolver) error {
	same := func(a *api.NetworkAttachmentConfig, ref string) bool {
		if a.GetTarget() == ref {
			return true
		}
		if resolve == nil {
			return false
		}
		id := resolve(ref)
		return id != "" && a.GetTarget() == id
	}
	for _, ref := range u.networkRm {
		if ref == "" {
			return flagError("network-rm", ref, "expected a network name or ID")
		}
		t.Networks = slices.DeleteFunc(t.Networks, func(a *api.NetworkAttachmentConfig) bool { return same(a, ref) })
	}
	for _, s := range u.networkAdd {
		n, err := parseNetwork(s)
		if err != nil {
			return renameFlag(err, "network", "network-add")
		}
		t.Networks = upsert(t.Networks, n, func(a *api.NetworkAttachmentConfig) bool { return same(a, n.Target) })
	}
	if len(t.Networks) == 0 {
		t.Networks = nil
	}
	return nil
}

// applyContainerListChanges applies the -rm then -add forms of
// --mount, --secret, --config and --constraint.
func applyContainerListChanges(t *api.TaskSpec, u *updateFlags) error {
	c := t.Container
	for _, target := range u.mountRm {
		if !strings.HasPrefix(target, "/") {
			return flagError("mount-rm", target, "expected the mount's target, an absolute path")
		}
		c.Mounts = slices.DeleteFunc(c.Mounts, func(m *api.Mount) bool { return m.Target == target })
	}
	for _, s := range u.mountAdd {
		m, err := parseMount(s)
		if err != nil {
			return renameFlag(err, "mount", "mount-add")
		}
		c.Mounts = upsert(c.Mounts, m, func(x *api.Mount) bool { return x.Target == m.Target })
	}
	for _, name := range u.secretRm {
		c.Secrets = slices.DeleteFunc(c.Secrets, func(s *api.SecretReference) bool { return s.SecretName == name })
	}
	for _, s := range u.secretAdd {
		r, err := parseFileRef("secret", s)
		if err != nil {
			return renameFlag(err, "secret", "secret-add")
		}
		c.Secrets = upsert(c.Secrets, &api.SecretReference{SecretName: r.source, Target: r.target},
			func(x *api.SecretReference) bool { return x.SecretName == r.source })
	}
	for _, name := range u.configRm {
		c.Configs = slices.DeleteFunc(c.Configs, func(x *api.ConfigReference) bool { return x.ConfigName == name })
	}
	for _, s := range u.configAdd {
		r, err := parseFileRef("config", s)
		if err != nil {
			return renameFlag(err, "config", "config-add")
		}
		c.Configs = upsert(c.Configs, &api.ConfigReference{ConfigName: r.source, Target: r.target},
			func(x *api.ConfigReference) bool { return x.ConfigName == r.source })
	}
	if t.Placement == nil && len(u.constraintAdd) > 0 {
		t.Placement = &api.Placement{}
	}
	if p := t.Placement; p != nil {
		for _, s := range u.constraintRm {
			p.Constraints = slices.DeleteFunc(p.Constraints, func(x string) bool { return x == s })
		}
		for _, s := range u.constraintAdd {
			if _, err := parseConstraint(s); err != nil {
				return renameFlag(err, "constraint", "constraint-add")
			}
			if !slices.Contains(p.Constraints, s) {
				p.Constraints = append(p.Constraints, s)
			}
		}
		if len(p.Constraints) == 0 {
			p.Constraints = nil
		}
	}
	if len(c.Mounts) == 0 {
		c.Mounts = nil
	}
	if len(c.Secrets) == 0 {
		c.Secrets = nil
	}
	if len(c.Configs) == 0 {
		c.Configs = nil
	}
	return nil
}

// updateResult is what a written update leaves to wait for.
type updateResult struct {
	target waitTarget
	// before is the service's update status as read before the write:
	// it belongs to an earlier update until the supervisor replaces it.
	before *api.UpdateStatus
	// written is false when the spec did not change and nothing was sent.
	written bool
	// warnings are the manager's about the write.
	warnings []string
}

// updateService reads the service, changes a copy of its spec with
// edit (or, with rollback, asks for the previous spec back) and writes
// it with the version read, reading again and retrying when the service
// changed in between. Without force, a spec edit leaves unchanged is not
// written.
func updateService(ctx context.Context, c *client, ref string, rollback, force bool, edit func(name string, spec *api.ServiceSpec) error) (updateResult, error) {
	var res updateResult
	err := retryOutOfSequence(ctx, func() error {
		s, err := getService(ctx, c, ref)
		if err != nil {
			return err
		}
		name := s.GetSpec().GetAnnotations().GetName()
		if name == "" {
			name = s.GetId()
		}
		res = updateResult{target: waitTarget{id: s.GetId(), name: name}, before: s.GetUpdateStatus()}
		req := &api.UpdateServiceRequest{ServiceId: s.GetId(), Version: s.GetMeta().GetVersion()}
		if rollback {
			if s.GetPreviousSpec() == nil {
				return fmt.Errorf("service %s has no previous spec to roll back to: it has not been updated since it was created", name)
			}
			req.Rollback = true
		} else {
			spec, _ := proto.Clone(s.GetSpec()).(*api.ServiceSpec)
			if spec == nil {
				spec = &api.ServiceSpec{}
			}
			if err := edit(name, spec); err != nil {
				return err
			}
			if force {
				spec.Task.ForceUpdate++
			} else if proto.Equal(spec, s.GetSpec()) {
				return nil
			}
			req.Spec = spec
		}
		resp, err := write(ctx, c, c.api.UpdateService, req)
		if err != nil {
			return err
		}
		res.written, res.warnings = true, resp.GetWarnings()
		return nil
	})
	return res, err
}

// newServiceUpdateCmd returns `shoal service update`.
func newServiceUpdateCmd(g *globalOptions) *cobra.Command {
	o := newServiceOptions()
	var (
		u     updateFlags
		wait  waitOptions
		quiet bool
	)
	cmd := &cobra.Command{
		Use:   "update [flags] SERVICE",
		Short: "Change a service and roll the change out",
		Long: "Change a service: only what the flags say changes. The flags of shoal service create set a value,\n" +
			"or replace a whole list (--env, --mount, ...); the -add and -rm forms change one entry of a list.\n" +
			"--replicas rescales the service; its name and mode cannot change. The tasks are then replaced\n" +
			"as --update-* says. A change that leaves the spec as it is does nothing, unless --force.\n" +
			"--rollback goes back to the spec before the last update, as shoal service rollback does.\n\n" +
			updateWaitHelp,
		Example: "  shoal service update --image nginx:1.27 web\n" +
			"  shoal service update --env-add LOG=debug --env-rm OLD --publish-add 8443:443 web\n" +
			"  shoal service update --force -d web",
		Args: requireOneService("shoal service update"),
		RunE: func(cmd *cobra.Command, args []string) error {
			fs := cmd.Flags()
			if err := checkUpdateFlags(o, &u, fs, cmd.InheritedFlags()); err != nil {
				return err
			}
			if err := wait.check(); err != nil {
				return err
			}
			ctx := commandContext(cmd)
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			resolve := cachedNetworkResolver(ctx, c)
			res, err := updateService(ctx, c, args[0], u.rollback, u.force, func(name string, spec *api.ServiceSpec) error {
				return applyUpdate(spec, name, o, &u, fs.Changed, resolve)
			})
			if err != nil {
				return err
			}
			if !res.written {
				fmt.Fprintf(cmd.OutOrStdout(), "service %s: nothing to change (its spec already says so; give --force to replace its tasks anyway)\n", res.target.name)
				return nil
			}
			return printAndWait(cmd, c, &wait, quiet, res, u.rollback)
		},
	}
	f := cmd.Flags()
	addServiceFlags(f, o)
	for _, name := range []string{"name", "mode"} {
		_ = f.MarkHidden(name) // refused with an explanation
	}
	u.addFlags(f)
	wait.addFlags(f)
	f.BoolVarP(&quiet, "quiet", "q", false, "print only the service name (and wait without printing the progress)")
	return cmd
}

// newServiceRollbackCmd returns `shoal service rollback`.
func newServiceRollbackCmd(g *globalOptions) *cobra.Command {
	var (
		wait  waitOptions
		quiet bool
	)
	cmd := &cobra.Command{
		Use:   "rollback [flags] SERVICE",
		Short: "Go back to a service's spec before its last update",
		Long: "Put back the spec a service had before its last update (the current one becomes the one to go\n" +
			"back to, so a second rollback undoes the first). The tasks are replaced as --rollback-* says.\n\n" +
			updateWaitHelp,
		Args: requireOneService("shoal service rollback"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := wait.check(); err != nil {
				return err
			}
			ctx := commandContext(cmd)
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			res, err := updateService(ctx, c, args[0], true, false, nil)
			if err != nil {
				return err
			}
			return printAndWait(cmd, c, &wait, quiet, res, true)
		},
	}
	wait.addFlags(cmd.Flags())
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the service name (and wait without printing the progress)")
	return cmd
}

// printAndWait prints the name of the updated service and waits for it.
func printAndWait(cmd *cobra.Command, c *client, wait *waitOptions, quiet bool, res updateResult, rollback bool) error {
	printWarnings(cmd, res.warnings)
	fmt.Fprintln(cmd.OutOrStdout(), res.target.name)
	progress := cmd.OutOrStdout()
	if quiet {
		progress = io.Discard
	}
	return waitForUpdate(cmd, c, wait, progress, res, rollback)
}

// requireOneService accepts exactly one SERVICE argument.
func requireOneService(command string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("%s needs exactly one SERVICE (name or ID), got %d arguments", command, len(args))
		}
		return nil
	}
}

// cachedNetworkResolver looks networks up with GetNetwork, once each; a
// network that cannot be read resolves to "" and is compared by the name
// as given (a network added is checked by the manager anyway).
func cachedNetworkResolver(ctx context.Context, c *client) networkResolver {
	cache := map[string]string{}
	return func(ref string) string {
		if id, ok := cache[ref]; ok {
			return id
		}
		id := ""
		if resp, err := read(ctx, c, c.api.GetNetwork, &api.GetNetworkRequest{NetworkId: ref}); err == nil {
			id = resp.GetNetwork().GetId()
		}
		cache[ref] = id
		return id
	}
}
