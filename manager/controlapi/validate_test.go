package controlapi

import (
	"errors"
	"math"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/proto/api"
)

func i64(v int64) *int64 { return &v }

// validSpec is a spec every rule accepts; each case changes one thing.
func validSpec() *api.ServiceSpec {
	return &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "web", Labels: map[string]string{"tier": "front"}},
		Task: &api.TaskSpec{
			Container: &api.ContainerSpec{
				Image:           "nginx:1.27",
				Env:             []string{"A=1", "B"},
				StopGracePeriod: i64(int64(10e9)),
				Mounts: []*api.Mount{
					{Type: api.Mount_TYPE_VOLUME, Source: "data", Target: "/data"},
					{Type: api.Mount_TYPE_BIND, Source: "/etc/app", Target: "/etc/app", ReadOnly: true},
					{Type: api.Mount_TYPE_TMPFS, Target: "/tmp", TmpfsSizeBytes: 1 << 20},
				},
				Healthcheck: &api.HealthConfig{Test: []string{"CMD", "true"}, Interval: i64(1e9)},
				Secrets:     []*api.SecretReference{{SecretName: "db-pass", Target: &api.FileTarget{Mode: 0o400}}},
				Configs:     []*api.ConfigReference{{ConfigName: "app.conf"}},
			},
			Resources: &api.ResourceRequirements{
				Limits:       &api.Resources{NanoCpus: 2e9, MemoryBytes: 1 << 30, Pids: 100},
				Reservations: &api.Resources{NanoCpus: 1e9, MemoryBytes: 1 << 29},
			},
			Restart: &api.RestartPolicy{Condition: api.RestartPolicy_CONDITION_ON_FAILURE, Delay: i64(5e9)},
			Placement: &api.Placement{
				Constraints: []string{"node.role==worker", "node.labels.zone!=eu"},
				Preferences: []*api.PlacementPreference{{Spread: "node.labels.zone"}},
				MaxReplicas: 2,
			},
			Networks: []*api.NetworkAttachmentConfig{{Target: "app"}, {Target: "db", Aliases: []string{"web"}}},
		},
		Mode:     &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 3}}},
		Update:   &api.UpdateConfig{Delay: 1e9, MaxFailureRatio: 0.2, Monitor: i64(5e9)},
		Rollback: &api.UpdateConfig{FailureAction: api.UpdateConfig_FAILURE_ACTION_CONTINUE},
		Endpoint: &api.EndpointSpec{Ports: []*api.PortConfig{
			{TargetPort: 80, PublishedPort: 8080},
			{TargetPort: 80, PublishedPort: 8080, Protocol: api.PortConfig_PROTOCOL_UDP},
			{TargetPort: 9000, PublishMode: api.PortConfig_PUBLISH_MODE_HOST},
		}},
	}
}

// A case's field is the field path the error must name; "" means the
// spec is valid.
var validateCases = []struct {
	name   string
	change func(s *api.ServiceSpec)
	field  string
	// want, when set, must appear in the message too.
	want string
}{
	{"valid", func(s *api.ServiceSpec) {}, "", ""},

	// annotations
	{"name missing", func(s *api.ServiceSpec) { s.Annotations.Name = "" }, "annotations.name", "required"},
	{"no annotations", func(s *api.ServiceSpec) { s.Annotations = nil }, "annotations.name", "required"},
	{"name with dots and dashes", func(s *api.ServiceSpec) { s.Annotations.Name = "a.b-c_d9" }, "", ""},
	{"name 63 chars", func(s *api.ServiceSpec) { s.Annotations.Name = strings.Repeat("a", 63) }, "", ""},
	{"name 64 chars", func(s *api.ServiceSpec) { s.Annotations.Name = strings.Repeat("a", 64) }, "annotations.name", "1 to 63"},
	{"name leading dash", func(s *api.ServiceSpec) { s.Annotations.Name = "-web" }, "annotations.name", `"-web"`},
	{"name with slash", func(s *api.ServiceSpec) { s.Annotations.Name = "a/b" }, "annotations.name", ""},
	{"empty label key", func(s *api.ServiceSpec) { s.Annotations.Labels[""] = "x" }, "annotations.labels", "empty key"},

	// container
	{"no task", func(s *api.ServiceSpec) { s.Task = nil }, "task.container.image", "required"},
	{"image missing", func(s *api.ServiceSpec) { s.Task.Container.Image = "" }, "task.container.image", "required"},
	{"image with space", func(s *api.ServiceSpec) { s.Task.Container.Image = "nginx latest" }, "task.container.image", "whitespace"},
	{"image with digest", func(s *api.ServiceSpec) { s.Task.Container.Image = "reg:5000/nginx:1@sha256:abc" }, "", ""},
	{"env empty", func(s *api.ServiceSpec) { s.Task.Container.Env = []string{"A=1", ""} }, "task.container.env[1]", "KEY=VALUE"},
	{"env leading =", func(s *api.ServiceSpec) { s.Task.Container.Env = []string{"=x"} }, "task.container.env[0]", "no variable name"},
	{"env empty value ok", func(s *api.ServiceSpec) { s.Task.Container.Env = []string{"A="} }, "", ""},
	{"container label empty key", func(s *api.ServiceSpec) { s.Task.Container.Labels = map[string]string{"": "v"} }, "task.container.labels", ""},
	{"stop grace zero", func(s *api.ServiceSpec) { s.Task.Container.StopGracePeriod = i64(0) }, "", ""},
	{"stop grace negative", func(s *api.ServiceSpec) { s.Task.Container.StopGracePeriod = i64(-5e9) },
		"task.container.stop_grace_period", "must not be negative, got -5s"},
	{"ulimit soft above hard", func(s *api.ServiceSpec) {
		s.Task.Container.Ulimits = []*api.Ulimit{{Name: "nofile", Soft: 10, Hard: 5}}
	}, "task.container.ulimits[0].soft", "hard limit"},
	{"ulimit ok", func(s *api.ServiceSpec) {
		s.Task.Container.Ulimits = []*api.Ulimit{{Name: "nofile", Soft: 5, Hard: 10}}
	}, "", ""},
	{"ulimit no name", func(s *api.ServiceSpec) { s.Task.Container.Ulimits = []*api.Ulimit{{Soft: 1, Hard: 1}} }, "task.container.ulimits[0].name", ""},
	{"sysctl empty name", func(s *api.ServiceSpec) { s.Task.Container.Sysctls = map[string]string{"": "1"} }, "task.container.sysctls", ""},

	// mounts
	{"mount target relative", func(s *api.ServiceSpec) { s.Task.Container.Mounts[0].Target = "data" }, "task.container.mounts[0].target", "absolute"},
	{"mount target missing", func(s *api.ServiceSpec) { s.Task.Container.Mounts[0].Target = "" }, "task.container.mounts[0].target", "required"},
	{"mount over the secrets dir", func(s *api.ServiceSpec) { s.Task.Container.Mounts[0].Target = "/run/secrets/db" }, "task.container.mounts[0].target", "reserved for secrets"},
	{"mount target duplicate", func(s *api.ServiceSpec) { s.Task.Container.Mounts[2].Target = "/data/" }, "task.container.mounts[2].target", "mounts[0]"},
	{"bind source relative", func(s *api.ServiceSpec) { s.Task.Container.Mounts[1].Source = "etc/app" }, "task.container.mounts[1].source", "absolute"},
	{"bind source missing", func(s *api.ServiceSpec) { s.Task.Container.Mounts[1].Source = "" }, "task.container.mounts[1].source", "required"},
	{"volume anonymous", func(s *api.ServiceSpec) { s.Task.Container.Mounts[0].Source = "" }, "", ""},
	{"volume bad name", func(s *api.ServiceSpec) { s.Task.Container.Mounts[0].Source = "/var/data" }, "task.container.mounts[0].source", "volume name"},
	{"tmpfs with source", func(s *api.ServiceSpec) { s.Task.Container.Mounts[2].Source = "x" }, "task.container.mounts[2].source", "no source"},
	{"tmpfs negative size", func(s *api.ServiceSpec) { s.Task.Container.Mounts[2].TmpfsSizeBytes = -1 }, "task.container.mounts[2].tmpfs_size_bytes", "negative"},
	{"tmpfs size on volume", func(s *api.ServiceSpec) { s.Task.Container.Mounts[0].TmpfsSizeBytes = 1 }, "task.container.mounts[0].tmpfs_size_bytes", "only apply to tmpfs"},
	{"mount unknown type", func(s *api.ServiceSpec) { s.Task.Container.Mounts[0].Type = 9 }, "task.container.mounts[0].type", "TYPE_BIND"},

	// healthcheck
	{"healthcheck empty test", func(s *api.ServiceSpec) { s.Task.Container.Healthcheck.Test = nil }, "", ""},
	{"healthcheck CMD-SHELL", func(s *api.ServiceSpec) {
		s.Task.Container.Healthcheck.Test = []string{"CMD-SHELL", "curl -f localhost"}
	}, "", ""},
	{"healthcheck NONE", func(s *api.ServiceSpec) { s.Task.Container.Healthcheck.Test = []string{"NONE"} }, "", ""},
	{"healthcheck bad first", func(s *api.ServiceSpec) { s.Task.Container.Healthcheck.Test = []string{"curl", "x"} },
		"task.container.healthcheck.test", "CMD, CMD-SHELL or NONE"},
	{"healthcheck CMD alone", func(s *api.ServiceSpec) { s.Task.Container.Healthcheck.Test = []string{"CMD"} }, "task.container.healthcheck.test", ""},
	{"healthcheck interval negative", func(s *api.ServiceSpec) { s.Task.Container.Healthcheck.Interval = i64(-1e9) },
		"task.container.healthcheck.interval", "got -1s"},
	{"healthcheck timeout negative", func(s *api.ServiceSpec) { s.Task.Container.Healthcheck.Timeout = i64(-1) },
		"task.container.healthcheck.timeout", "negative"},
	{"healthcheck start_period negative", func(s *api.ServiceSpec) { s.Task.Container.Healthcheck.StartPeriod = i64(-1) },
		"task.container.healthcheck.start_period", "negative"},

	// secrets and configs
	{"secret without name", func(s *api.ServiceSpec) { s.Task.Container.Secrets[0].SecretName = "" }, "task.container.secrets[0].secret_name", "required"},
	{"config without name", func(s *api.ServiceSpec) { s.Task.Container.Configs[0].ConfigName = "" }, "task.container.configs[0].config_name", "required"},
	{"two secrets one file", func(s *api.ServiceSpec) {
		s.Task.Container.Secrets = append(s.Task.Container.Secrets,
			&api.SecretReference{SecretName: "other", Target: &api.FileTarget{Name: "db-pass"}})
	}, "task.container.secrets[1]", "target.name"},
	{"secret target climbs", func(s *api.ServiceSpec) { s.Task.Container.Secrets[0].Target.Name = "../etc/passwd" },
		"task.container.secrets[0].target.name", ".."},

	// resources
	{"negative cpu limit", func(s *api.ServiceSpec) { s.Task.Resources.Limits.NanoCpus = -1 }, "task.resources.limits.nano_cpus", "negative"},
	{"negative memory reservation", func(s *api.ServiceSpec) { s.Task.Resources.Reservations.MemoryBytes = -1 },
		"task.resources.reservations.memory_bytes", "negative"},
	{"negative pids", func(s *api.ServiceSpec) { s.Task.Resources.Limits.Pids = -1 }, "task.resources.limits.pids", "negative"},
	{"pids reservation", func(s *api.ServiceSpec) { s.Task.Resources.Reservations.Pids = 5 }, "task.resources.reservations.pids", "limit only"},
	{"cpu limit below reservation", func(s *api.ServiceSpec) { s.Task.Resources.Limits.NanoCpus = 5e8 },
		"task.resources.limits.nano_cpus", "below the reservation"},
	{"memory limit below reservation", func(s *api.ServiceSpec) { s.Task.Resources.Limits.MemoryBytes = 1 },
		"task.resources.limits.memory_bytes", "below the reservation"},
	{"reservation without limit", func(s *api.ServiceSpec) { s.Task.Resources.Limits = nil }, "", ""},

	// restart
	{"restart unknown condition", func(s *api.ServiceSpec) { s.Task.Restart.Condition = 7 }, "task.restart.condition", "CONDITION_ANY"},
	{"restart delay negative", func(s *api.ServiceSpec) { s.Task.Restart.Delay = i64(-1e9) }, "task.restart.delay", "got -1s"},
	{"restart window negative", func(s *api.ServiceSpec) { s.Task.Restart.Window = -2e9 }, "task.restart.window", "got -2s"},

	// placement
	{"constraint bad key", func(s *api.ServiceSpec) { s.Task.Placement.Constraints = []string{"node.zone==eu"} },
		"task.placement.constraints[0]", "unknown key"},
	{"constraint single =", func(s *api.ServiceSpec) { s.Task.Placement.Constraints = []string{"node.role=worker"} },
		"task.placement.constraints[0]", "=="},
	{"constraint bad role", func(s *api.ServiceSpec) { s.Task.Placement.Constraints = []string{"node.role==boss"} },
		"task.placement.constraints[0]", "manager or worker"},
	{"constraint engine label", func(s *api.ServiceSpec) { s.Task.Placement.Constraints = []string{"engine.labels.ssd == true"} }, "", ""},
	{"preference bad", func(s *api.ServiceSpec) { s.Task.Placement.Preferences[0].Spread = "node.hostname" },
		"task.placement.preferences[0].spread", "node.labels.NAME"},
	{"preference engine label", func(s *api.ServiceSpec) { s.Task.Placement.Preferences[0].Spread = "engine.labels.rack" }, "", ""},
	{"preference empty label", func(s *api.ServiceSpec) { s.Task.Placement.Preferences[0].Spread = "node.labels." },
		"task.placement.preferences[0].spread", ""},
	{"max_replicas with global", func(s *api.ServiceSpec) { s.Mode.Mode = &api.ServiceMode_Global{Global: &api.Global{}} },
		"task.placement.max_replicas", "replicated"},
	{"empty platform", func(s *api.ServiceSpec) { s.Task.Placement.Platforms = []*api.Platform{{}} }, "task.placement.platforms[0]", ""},

	// networks
	{"network target empty", func(s *api.ServiceSpec) { s.Task.Networks[1].Target = "" }, "task.networks[1].target", "required"},
	{"network duplicated", func(s *api.ServiceSpec) { s.Task.Networks[1].Target = "app" }, "task.networks[1].target", "networks[0]"},

	// mode
	{"mode missing", func(s *api.ServiceSpec) { s.Mode = nil }, "mode", "replicated, global, replicated-job, global-job"},
	{"mode empty oneof", func(s *api.ServiceSpec) { s.Mode = &api.ServiceMode{} }, "mode", "replicated, global"},
	{"global-job", func(s *api.ServiceSpec) {
		s.Mode.Mode = &api.ServiceMode_GlobalJob{GlobalJob: &api.GlobalJob{}}
		s.Task.Placement.MaxReplicas = 0
	}, "", ""},
	{"replicated-job ok", func(s *api.ServiceSpec) {
		s.Mode.Mode = &api.ServiceMode_ReplicatedJob{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: 2, TotalCompletions: 10}}
	}, "", ""},
	{"replicated-job max_concurrent 0 means 1", func(s *api.ServiceSpec) {
		s.Mode.Mode = &api.ServiceMode_ReplicatedJob{ReplicatedJob: &api.ReplicatedJob{TotalCompletions: 1}}
	}, "", ""},
	{"replicated-job no completions", func(s *api.ServiceSpec) {
		s.Mode.Mode = &api.ServiceMode_ReplicatedJob{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: 1}}
	}, "mode.replicated_job.total_completions", "at least 1"},
	{"replicated-job concurrency above total", func(s *api.ServiceSpec) {
		s.Mode.Mode = &api.ServiceMode_ReplicatedJob{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: 5, TotalCompletions: 2}}
	}, "mode.replicated_job.max_concurrent", "total_completions"},

	// update and rollback
	{"update delay negative", func(s *api.ServiceSpec) { s.Update.Delay = -3e9 }, "update.delay", "got -3s"},
	{"update monitor negative", func(s *api.ServiceSpec) { s.Update.Monitor = i64(-1e9) }, "update.monitor", "negative"},
	{"update ratio above 1", func(s *api.ServiceSpec) { s.Update.MaxFailureRatio = 1.5 }, "update.max_failure_ratio", "between 0 and 1"},
	{"update ratio 1", func(s *api.ServiceSpec) { s.Update.MaxFailureRatio = 1 }, "", ""},
	{"update ratio negative", func(s *api.ServiceSpec) { s.Update.MaxFailureRatio = -0.1 }, "update.max_failure_ratio", ""},
	{"update ratio NaN", func(s *api.ServiceSpec) { s.Update.MaxFailureRatio = float32(math.NaN()) }, "update.max_failure_ratio", ""},
	{"update unknown order", func(s *api.ServiceSpec) { s.Update.Order = 5 }, "update.order", "ORDER_START_FIRST"},
	{"update failure action rollback", func(s *api.ServiceSpec) { s.Update.FailureAction = api.UpdateConfig_FAILURE_ACTION_ROLLBACK }, "", ""},
	{"rollback delay negative", func(s *api.ServiceSpec) { s.Rollback.Delay = -1 }, "rollback.delay", "negative"},
	{"rollback monitor negative", func(s *api.ServiceSpec) { s.Rollback.Monitor = i64(-1) }, "rollback.monitor", "negative"},
	{"rollback ratio", func(s *api.ServiceSpec) { s.Rollback.MaxFailureRatio = 2 }, "rollback.max_failure_ratio", ""},
	{"rollback of rollback", func(s *api.ServiceSpec) { s.Rollback.FailureAction = api.UpdateConfig_FAILURE_ACTION_ROLLBACK },
		"rollback.failure_action", "PAUSE"},

	// ports
	{"port target 0", func(s *api.ServiceSpec) { s.Endpoint.Ports[0].TargetPort = 0 }, "endpoint.ports[0].target_port", "between 1 and 65535"},
	{"port target too big", func(s *api.ServiceSpec) { s.Endpoint.Ports[0].TargetPort = 70000 }, "endpoint.ports[0].target_port", "got 70000"},
	{"published too big", func(s *api.ServiceSpec) { s.Endpoint.Ports[0].PublishedPort = 65536 }, "endpoint.ports[0].published_port", "0 and 65535"},
	{"published duplicate", func(s *api.ServiceSpec) { s.Endpoint.Ports[1].Protocol = api.PortConfig_PROTOCOL_TCP },
		"endpoint.ports[1].published_port", "8080/tcp"},
	{"host mode duplicate", func(s *api.ServiceSpec) {
		s.Endpoint.Ports[2].PublishedPort = 8080
	}, "endpoint.ports[2].published_port", "ports[0]"},
	{"two unpublished same target", func(s *api.ServiceSpec) {
		s.Endpoint.Ports = append(s.Endpoint.Ports, &api.PortConfig{TargetPort: 9000, PublishMode: api.PortConfig_PUBLISH_MODE_HOST})
	}, "", ""},
	{"unknown protocol", func(s *api.ServiceSpec) { s.Endpoint.Ports[0].Protocol = 3 }, "endpoint.ports[0].protocol", "PROTOCOL_UDP"},
	{"dnsrr with ingress port", func(s *api.ServiceSpec) { s.Endpoint.Mode = api.EndpointSpec_MODE_DNSRR },
		"endpoint.ports[0].publish_mode", "PUBLISH_MODE_HOST"},
	{"dnsrr with host port", func(s *api.ServiceSpec) {
		s.Endpoint.Mode = api.EndpointSpec_MODE_DNSRR
		s.Endpoint.Ports = s.Endpoint.Ports[2:]
	}, "", ""},
}

func TestValidateServiceSpec(t *testing.T) {
	for _, tc := range validateCases {
		t.Run(tc.name, func(t *testing.T) {
			spec := validSpec()
			tc.change(spec)
			err := ValidateServiceSpec(spec)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want an error naming %s, got none", tc.field)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("want *FieldError, got %T %v", err, err)
			}
			if fe.Field != tc.field {
				t.Errorf("field = %q, want %q (%v)", fe.Field, tc.field, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "invalid spec: "+tc.field+": ") {
				t.Errorf("message %q does not start with %q", msg, "invalid spec: "+tc.field+": ")
			}
			if tc.want != "" && !strings.Contains(msg, tc.want) {
				t.Errorf("message %q does not contain %q", msg, tc.want)
			}
			if st := status.Convert(ToStatus(err)); st.Code() != codes.InvalidArgument || st.Message() != msg {
				t.Errorf("ToStatus = %v %q, want InvalidArgument %q", st.Code(), st.Message(), msg)
			}
		})
	}
}

func TestValidateServiceSpecNil(t *testing.T) {
	err := ValidateServiceSpec(nil)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "spec" {
		t.Fatalf("nil spec: got %v", err)
	}
}

func TestValidateServiceSpecDoesNotChangeSpec(t *testing.T) {
	spec := validSpec()
	before := spec.String()
	if err := ValidateServiceSpec(spec); err != nil {
		t.Fatal(err)
	}
	if spec.String() != before {
		t.Fatal("ValidateServiceSpec changed the spec")
	}
}

func TestValidateNodeSpec(t *testing.T) {
	cases := []struct {
		name  string
		spec  *api.NodeSpec
		field string
	}{
		{"nil", nil, "spec"},
		{"empty is fine", &api.NodeSpec{}, ""},
		{"drain manager", &api.NodeSpec{Availability: api.NodeAvailability_NODE_AVAILABILITY_DRAIN, DesiredRole: api.NodeRole_NODE_ROLE_MANAGER}, ""},
		{"unknown availability", &api.NodeSpec{Availability: 9}, "availability"},
		{"unknown role", &api.NodeSpec{DesiredRole: 4}, "desired_role"},
		{"empty label key", &api.NodeSpec{Annotations: &api.Annotations{Labels: map[string]string{"": "x"}}}, "annotations.labels"},
		{"labels", &api.NodeSpec{Annotations: &api.Annotations{Labels: map[string]string{"zone": ""}}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateNodeSpec(tc.spec)
			checkFieldErr(t, err, tc.field)
		})
	}
}

func TestValidateClusterSpec(t *testing.T) {
	cases := []struct {
		name  string
		spec  *api.ClusterSpec
		field string
	}{
		{"empty", &api.ClusterSpec{}, ""},
		{"set", &api.ClusterSpec{TaskHistoryRetentionLimit: i64(0), HeartbeatPeriod: i64(1e9), SnapshotInterval: proto64(100)}, ""},
		{"negative retention", &api.ClusterSpec{TaskHistoryRetentionLimit: i64(-1)}, "task_history_retention_limit"},
		{"negative heartbeat", &api.ClusterSpec{HeartbeatPeriod: i64(-1e9)}, "heartbeat_period"},
		{"zero heartbeat", &api.ClusterSpec{HeartbeatPeriod: i64(0)}, "heartbeat_period"},
		{"zero snapshot interval", &api.ClusterSpec{SnapshotInterval: proto64(0)}, "snapshot_interval"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkFieldErr(t, ValidateClusterSpec(tc.spec), tc.field)
		})
	}
}

func proto64(v uint64) *uint64 { return &v }

// checkFieldErr checks that err is nil when field is "", else a
// *FieldError naming field.
func checkFieldErr(t *testing.T, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Fatalf("want no error, got %v", err)
		}
		return
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("want *FieldError for %s, got %v", field, err)
	}
	if fe.Field != field || !strings.Contains(err.Error(), field) {
		t.Fatalf("want field %s, got %v", field, err)
	}
}
