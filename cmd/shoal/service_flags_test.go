package main

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// specFromFlags parses args as `service create` flags and builds the spec
// of a service running nginx.
func specFromFlags(args ...string) (*api.ServiceSpec, error) {
	o := newServiceOptions()
	o.lookupEnv = func(k string) (string, bool) {
		if k == "FROM_HERE" {
			return "yes", true
		}
		return "", false
	}
	fs := pflag.NewFlagSet("create", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	addServiceFlags(fs, o)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return buildServiceSpec(o, fs.Changed, "nginx", fs.Args())
}

// base is the spec of `shoal service create nginx` with no flags.
func base(edit func(*api.ServiceSpec)) *api.ServiceSpec {
	s := &api.ServiceSpec{
		Task: &api.TaskSpec{Container: &api.ContainerSpec{Image: "nginx"}},
		Mode: &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 1}}},
	}
	if edit != nil {
		edit(s)
	}
	return s
}

func TestServiceFlagsToSpec(t *testing.T) {
	tcp, udp := api.PortConfig_PROTOCOL_TCP, api.PortConfig_PROTOCOL_UDP
	for _, tc := range []struct {
		name string
		args []string
		want *api.ServiceSpec
	}{
		{"no flags sets nothing optional", nil, base(nil)},
		{"name and labels", []string{"--name", "web", "-l", "tier=front", "--label", "canary"},
			base(func(s *api.ServiceSpec) {
				s.Annotations = &api.Annotations{Name: "web", Labels: map[string]string{"tier": "front", "canary": ""}}
			})},
		{"args after the image", []string{"sh", "-c", "echo hi"},
			base(func(s *api.ServiceSpec) { s.Task.Container.Args = []string{"sh", "-c", "echo hi"} })},
		{"replicas", []string{"--replicas", "0"},
			base(func(s *api.ServiceSpec) { s.Mode.GetReplicated().Replicas = 0 })},
		{"global", []string{"--mode", "global"}, base(func(s *api.ServiceSpec) {
			s.Mode = &api.ServiceMode{Mode: &api.ServiceMode_Global{Global: &api.Global{}}}
		})},
		{"replicated job", []string{"--mode", "replicated-job", "--replicas", "5", "--max-concurrent", "2"}, base(func(s *api.ServiceSpec) {
			s.Mode = &api.ServiceMode{Mode: &api.ServiceMode_ReplicatedJob{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: 2, TotalCompletions: 5}}}
		})},
		{"replicated job defaults", []string{"--mode", "replicated-job"}, base(func(s *api.ServiceSpec) {
			s.Mode = &api.ServiceMode{Mode: &api.ServiceMode_ReplicatedJob{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: 1, TotalCompletions: 1}}}
		})},
		{"publish forms", []string{"-p", "8080:80", "-p", "5353:53/udp", "-p", "9000",
			"--publish", "published=8443,target=443,protocol=udp,mode=host", "-p", "target=81"},
			base(func(s *api.ServiceSpec) {
				s.Endpoint = &api.EndpointSpec{Ports: []*api.PortConfig{
					{PublishedPort: 8080, TargetPort: 80, Protocol: tcp},
					{PublishedPort: 5353, TargetPort: 53, Protocol: udp},
					{TargetPort: 9000},
					{PublishedPort: 8443, TargetPort: 443, Protocol: udp, PublishMode: api.PortConfig_PUBLISH_MODE_HOST},
					{TargetPort: 81},
				}}
			})},
		{"endpoint mode alone", []string{"--endpoint-mode", "dnsrr"},
			base(func(s *api.ServiceSpec) { s.Endpoint = &api.EndpointSpec{Mode: api.EndpointSpec_MODE_DNSRR} })},
		{"mounts", []string{
			"--mount", "type=volume,source=data,target=/var/lib/data,readonly",
			"--mount", "type=bind,src=/etc/app,dst=/etc/app,ro=false",
			"--mount", "type=tmpfs,target=/tmp,tmpfs-size=64m,tmpfs-mode=1770",
			"--mount", "target=/cache"},
			base(func(s *api.ServiceSpec) {
				s.Task.Container.Mounts = []*api.Mount{
					{Type: api.Mount_TYPE_VOLUME, Source: "data", Target: "/var/lib/data", ReadOnly: true},
					{Type: api.Mount_TYPE_BIND, Source: "/etc/app", Target: "/etc/app"},
					{Type: api.Mount_TYPE_TMPFS, Target: "/tmp", TmpfsSizeBytes: 64 << 20, TmpfsMode: 01770},
					{Type: api.Mount_TYPE_VOLUME, Target: "/cache"},
				}
			})},
		{"memory units and cpus", []string{"--reserve-memory", "64M", "--limit-memory", "1.5g", "--reserve-cpu", "0.1", "--limit-cpu", "2"},
			base(func(s *api.ServiceSpec) {
				s.Task.Resources = &api.ResourceRequirements{
					Reservations: &api.Resources{NanoCpus: 100_000_000, MemoryBytes: 64 << 20},
					Limits:       &api.Resources{NanoCpus: 2_000_000_000, MemoryBytes: 3 << 29},
				}
			})},
		{"limits only", []string{"--limit-memory", "512k"},
			base(func(s *api.ServiceSpec) {
				s.Task.Resources = &api.ResourceRequirements{Limits: &api.Resources{MemoryBytes: 512 << 10}}
			})},
		{"update delay only leaves the optional fields unset", []string{"--update-delay", "1m30s"},
			base(func(s *api.ServiceSpec) { s.Update = &api.UpdateConfig{Delay: 90e9} })},
		{"update and rollback configs", []string{"--update-parallelism", "2", "--update-order", "start-first",
			"--update-failure-action", "rollback", "--update-monitor", "30s", "--update-max-failure-ratio", "0.25",
			"--update-drain", "2s", "--rollback-parallelism", "0", "--rollback-failure-action", "continue", "--rollback-drain", "500ms"},
			base(func(s *api.ServiceSpec) {
				s.Update = &api.UpdateConfig{Parallelism: ptr(uint64(2)), Order: api.UpdateConfig_ORDER_START_FIRST,
					FailureAction: api.UpdateConfig_FAILURE_ACTION_ROLLBACK, Monitor: ptr(int64(30e9)), MaxFailureRatio: 0.25, Drain: 2e9}
				s.Rollback = &api.UpdateConfig{Parallelism: ptr(uint64(0)), FailureAction: api.UpdateConfig_FAILURE_ACTION_CONTINUE, Drain: 5e8}
			})},
		{"restart policy", []string{"--restart-condition", "on-failure", "--restart-delay", "2s", "--restart-max-attempts", "3", "--restart-window", "1m"},
			base(func(s *api.ServiceSpec) {
				s.Task.Restart = &api.RestartPolicy{Condition: api.RestartPolicy_CONDITION_ON_FAILURE, Delay: ptr(int64(2e9)), MaxAttempts: 3, Window: 60e9}
			})},
		{"restart condition none", []string{"--restart-condition", "none"},
			base(func(s *api.ServiceSpec) {
				s.Task.Restart = &api.RestartPolicy{Condition: api.RestartPolicy_CONDITION_NONE}
			})},
		{"health check", []string{"--health-cmd", "curl -f http://localhost/", "--health-interval", "5s", "--health-timeout", "2s",
			"--health-retries", "3", "--health-start-period", "1m"},
			base(func(s *api.ServiceSpec) {
				s.Task.Container.Healthcheck = &api.HealthConfig{Test: []string{"CMD-SHELL", "curl -f http://localhost/"},
					Interval: ptr(int64(5e9)), Timeout: ptr(int64(2e9)), Retries: ptr(uint32(3)), StartPeriod: ptr(int64(60e9))}
			})},
		{"no health check", []string{"--no-healthcheck"},
			base(func(s *api.ServiceSpec) { s.Task.Container.Healthcheck = &api.HealthConfig{Test: []string{"NONE"}} })},
		{"container settings", []string{"-e", "A=1", "--env", "FROM_HERE", "-w", "/app", "-u", "1000:1000", "--hostname", "web-1",
			"--entrypoint", `sh -c 'exec "$0"'`, "--container-label", "x=y", "--stop-grace-period", "30s", "--stop-signal", "SIGQUIT",
			"--read-only", "--init", "--cap-add", "NET_ADMIN", "--cap-drop", "ALL", "--sysctl", "net.core.somaxconn=1024",
			"--ulimit", "nofile=1024:2048", "--ulimit", "nproc=512"},
			base(func(s *api.ServiceSpec) {
				c := s.Task.Container
				c.Env = []string{"A=1", "FROM_HERE=yes"}
				c.Dir, c.User, c.Hostname = "/app", "1000:1000", "web-1"
				c.Command = []string{"sh", "-c", `exec "$0"`}
				c.Labels = map[string]string{"x": "y"}
				c.StopGracePeriod, c.StopSignal = ptr(int64(30e9)), "SIGQUIT"
				c.ReadOnly, c.Init = true, true
				c.CapAdd, c.CapDrop = []string{"NET_ADMIN"}, []string{"ALL"}
				c.Sysctls = map[string]string{"net.core.somaxconn": "1024"}
				c.Ulimits = []*api.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}, {Name: "nproc", Soft: 512, Hard: 512}}
			})},
		{"placement", []string{"--constraint", "node.role==worker", "--constraint", "node.labels.zone!=us",
			"--placement-pref", "spread=node.labels.zone", "--replicas-max-per-node", "2"},
			base(func(s *api.ServiceSpec) {
				s.Task.Placement = &api.Placement{Constraints: []string{"node.role==worker", "node.labels.zone!=us"},
					Preferences: []*api.PlacementPreference{{Spread: "node.labels.zone"}}, MaxReplicas: 2}
			})},
		{"networks", []string{"--network", "app", "--network", "name=backend,alias=db,alias=pg"},
			base(func(s *api.ServiceSpec) {
				s.Task.Networks = []*api.NetworkAttachmentConfig{{Target: "app"}, {Target: "backend", Aliases: []string{"db", "pg"}}}
			})},
		{"secrets and configs", []string{"--secret", "db-pass", "--secret", "source=tls,target=cert.pem,mode=0400",
			"--config", "source=nginx-conf,target=/etc/nginx/nginx.conf,uid=101"},
			base(func(s *api.ServiceSpec) {
				s.Task.Container.Secrets = []*api.SecretReference{
					{SecretName: "db-pass", Target: &api.FileTarget{Name: "db-pass"}},
					{SecretName: "tls", Target: &api.FileTarget{Name: "cert.pem", Mode: 0400}},
				}
				s.Task.Container.Configs = []*api.ConfigReference{
					{ConfigName: "nginx-conf", Target: &api.FileTarget{Name: "/etc/nginx/nginx.conf", Uid: "101"}},
				}
			})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := specFromFlags(tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, tc.want) {
				t.Errorf("spec differs\n got: %s\nwant: %s", prototext.Format(got), prototext.Format(tc.want))
			}
		})
	}
}

func TestServiceFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		// want is the flag the error must name, or the whole message
		// when it starts with "invalid argument".
		want string
	}{
		{[]string{"--update-delay", "abc"}, `invalid argument "abc" for --update-delay: not a duration (examples: 10s, 1m30s)`},
		{[]string{"--update-delay", "10"}, "--update-delay"},
		{[]string{"--update-drain", "-1s"}, `invalid argument "-1s" for --update-drain: must not be negative`},
		{[]string{"--stop-grace-period", "-5s"}, `invalid argument "-5s" for --stop-grace-period: must not be negative`},
		{[]string{"--restart-window", "forever"}, "--restart-window"},
		{[]string{"--health-interval", "1x"}, "--health-interval"},
		{[]string{"--replicas", "x"}, "--replicas"},
		{[]string{"--replicas", "-1"}, "--replicas"},
		{[]string{"--mode", "daemonset"}, `invalid argument "daemonset" for --mode: valid values are replicated, global, replicated-job, global-job`},
		{[]string{"--mode", "global", "--replicas", "3"}, "--replicas"},
		{[]string{"--max-concurrent", "2"}, "--max-concurrent"},
		{[]string{"--mode", "global", "--replicas-max-per-node", "1"}, "--replicas-max-per-node"},
		{[]string{"--publish", "8080:80/sctp"}, "--publish"},
		{[]string{"--publish", "8080-8081:80-81"}, `invalid argument "8080-8081:80-81" for --publish: port ranges are not supported; publish each port`},
		{[]string{"--publish", "published=8080"}, "--publish"},
		{[]string{"--publish", "70000:80"}, "--publish"},
		{[]string{"--publish", "web"}, "--publish"},
		{[]string{"--publish", "published=80,target=80,mode=edge"}, "--publish"},
		{[]string{"--mount", "type=bind,target=/x"}, "--mount"},
		{[]string{"--mount", "type=nfs,target=/x"}, "--mount"},
		{[]string{"--mount", "source=v,target=relative"}, "--mount"},
		{[]string{"--mount", "source=v"}, "--mount"},
		{[]string{"--mount", "type=volume,target=/x,tmpfs-size=1m"}, "--mount"},
		{[]string{"--mount", "type=tmpfs,target=/x,tmpfs-size=lots"}, "--mount"},
		{[]string{"--mount", "type=tmpfs,target=/x,volume-driver=local"}, "--mount"},
		{[]string{"--reserve-memory", "64X"}, `invalid argument "64X" for --reserve-memory: not a memory size (examples: 64M, 1.5g, 512k; units b, k, m, g, t)`},
		{[]string{"--limit-memory", "-1g"}, "--limit-memory"},
		{[]string{"--limit-cpu", "abc"}, "--limit-cpu"},
		{[]string{"--reserve-cpu", "-1"}, "--reserve-cpu"},
		{[]string{"--reserve-cpu", "0.0000000001"}, "--reserve-cpu"},
		{[]string{"--restart-condition", "sometimes"}, `invalid argument "sometimes" for --restart-condition: valid values are none, on-failure, any`},
		{[]string{"--restart-max-attempts", "many"}, "--restart-max-attempts"},
		{[]string{"--update-order", "random"}, "--update-order"},
		{[]string{"--update-failure-action", "explode"}, "--update-failure-action"},
		{[]string{"--rollback-failure-action", "rollback"}, `invalid argument "rollback" for --rollback-failure-action: valid values are pause, continue`},
		{[]string{"--update-max-failure-ratio", "2"}, "--update-max-failure-ratio"},
		{[]string{"--rollback-monitor", "soon"}, "--rollback-monitor"},
		{[]string{"--update-parallelism", "-1"}, "--update-parallelism"},
		{[]string{"--health-retries", "x"}, "--health-retries"},
		{[]string{"--health-cmd", ""}, "--health-cmd"},
		{[]string{"--no-healthcheck", "--health-cmd", "true"}, "--no-healthcheck"},
		{[]string{"--endpoint-mode", "lb"}, "--endpoint-mode"},
		{[]string{"--endpoint-mode", "dnsrr", "-p", "8080:80"}, "--endpoint-mode"},
		{[]string{"--constraint", "node.role"}, "--constraint"},
		{[]string{"--placement-pref", "pack=node.id"}, "--placement-pref"},
		{[]string{"--ulimit", "nofile=2048:1024"}, "--ulimit"},
		{[]string{"--ulimit", "bogus=1"}, "--ulimit"},
		{[]string{"--ulimit", "nofile"}, "--ulimit"},
		{[]string{"--env", "=x"}, "--env"},
		{[]string{"--env", "NOT_SET_HERE"}, "--env"},
		{[]string{"--label", "=x"}, "--label"},
		{[]string{"--container-label", ""}, "--container-label"},
		{[]string{"--sysctl", "novalue"}, "--sysctl"},
		{[]string{"--network", "name=app,foo=bar"}, "--network"},
		{[]string{"--network", "alias=x"}, "--network"},
		{[]string{"--secret", "target=x"}, "--secret"},
		{[]string{"--config", "source=c,mode=999"}, "--config"},
		{[]string{"--workdir", "relative"}, "--workdir"},
		{[]string{"--entrypoint", "sh -c 'unterminated"}, "--entrypoint"},
		{[]string{"--cap-add", "NET ADMIN"}, "--cap-add"},
		{[]string{"--stop-signal", ""}, "--stop-signal"},
		{[]string{"--name", ""}, "--name"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			spec, err := specFromFlags(tc.args...)
			if err == nil {
				t.Fatalf("no error; spec %s", prototext.Format(spec))
			}
			t.Log(err)
			if strings.HasPrefix(tc.want, "invalid argument") {
				if err.Error() != tc.want {
					t.Errorf("error %q, want %q", err, tc.want)
				}
			} else if !strings.Contains(err.Error(), tc.want+":") && !strings.Contains(err.Error(), tc.want+" ") {
				t.Errorf("error %q does not name %s", err, tc.want)
			}
		})
	}
}

func TestParseMemory(t *testing.T) {
	for in, want := range map[string]int64{
		"100": 100, "100b": 100, "1k": 1 << 10, "1K": 1 << 10, "64m": 64 << 20, "64M": 64 << 20, "64MB": 64 << 20,
		"1g": 1 << 30, "1gb": 1 << 30, "2GiB": 2 << 30, "1.5g": 3 << 29, "1t": 1 << 40,
	} {
		got, err := parseMemory("limit-memory", in)
		if err != nil || got != want {
			t.Errorf("parseMemory(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestSplitWords(t *testing.T) {
	for in, want := range map[string][]string{
		"":                          nil,
		"  sh   -c  ":               {"sh", "-c"},
		`sh -c 'echo "hi there"'`:   {"sh", "-c", `echo "hi there"`},
		`a\ b "c \"d\"" ''`:         {"a b", `c "d"`, ""},
		"/docker-entrypoint.sh app": {"/docker-entrypoint.sh", "app"},
	} {
		got, err := splitWords("entrypoint", in)
		if err != nil || strings.Join(got, "|") != strings.Join(want, "|") || len(got) != len(want) {
			t.Errorf("splitWords(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
