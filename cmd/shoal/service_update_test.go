package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// updateFake is the fake Control server with an UpdateService that also
// rolls back, sets the update status a rolling update would, and a
// GetNetwork.
type updateFake struct {
	*fakeControl
	// statusAfterWrite, when set, becomes the service's update status
	// on every update.
	statusAfterWrite *api.UpdateStatus
	// networks maps network names to IDs.
	networks map[string]string
	// statusFrames, when set, are the update statuses GetService shows
	// after the first update, one per call, the last one repeating.
	statusFrames []*api.UpdateStatus
	written      bool
}

func (f *updateFake) GetService(ctx context.Context, req *api.GetServiceRequest) (*api.GetServiceResponse, error) {
	f.mu.Lock()
	if f.written && len(f.statusFrames) > 0 {
		for _, s := range f.services {
			if s.Id == req.ServiceId || s.Spec.Annotations.GetName() == req.ServiceId {
				s.UpdateStatus = f.statusFrames[0]
			}
		}
		if len(f.statusFrames) > 1 {
			f.statusFrames = f.statusFrames[1:]
		}
	}
	f.mu.Unlock()
	return f.fakeControl.GetService(ctx, req)
}

func (f *updateFake) UpdateService(ctx context.Context, req *api.UpdateServiceRequest) (*api.UpdateServiceResponse, error) {
	if err := f.record(ctx, "UpdateService", req, false); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.services {
		if s.Id != req.ServiceId {
			continue
		}
		if s.Meta.GetVersion() != req.Version {
			return nil, status.Error(codes.FailedPrecondition, "update out of sequence: read again and retry")
		}
		if req.Rollback {
			s.Spec, s.PreviousSpec = s.PreviousSpec, s.Spec
		} else {
			s.Spec, s.PreviousSpec = proto.Clone(req.Spec).(*api.ServiceSpec), s.Spec
		}
		s.Meta.Version++
		s.SpecVersion++
		f.written = true
		if f.statusAfterWrite != nil {
			s.UpdateStatus = f.statusAfterWrite
		}
		return &api.UpdateServiceResponse{Service: s}, nil
	}
	return nil, status.Errorf(codes.NotFound, "no service %q", req.ServiceId)
}

func (f *updateFake) GetNetwork(ctx context.Context, req *api.GetNetworkRequest) (*api.GetNetworkResponse, error) {
	if err := f.record(ctx, "GetNetwork", req, true); err != nil {
		return nil, err
	}
	if id, ok := f.networks[req.NetworkId]; ok {
		return &api.GetNetworkResponse{Network: &api.Network{Id: id}}, nil
	}
	return nil, status.Errorf(codes.NotFound, "no network %q", req.NetworkId)
}

// newUpdateFake returns the golden-test cluster served on a unix socket,
// and the --host value.
func newUpdateFake(t *testing.T) (*updateFake, string) {
	t.Helper()
	f := &updateFake{fakeControl: newFake(), networks: map[string]string{"app": "netappid0123", "back": "netbackid456"}}
	return f, startFake(t, f)
}

// web is the fake's web service.
func (f *updateFake) web() *api.Service { return f.services[0] }

// lastUpdate is the last UpdateService request the fake received.
func (f *updateFake) lastUpdate(t *testing.T) *api.UpdateServiceRequest {
	t.Helper()
	for i := len(f.sent) - 1; i >= 0; i-- {
		if req, ok := f.sent[i].(*api.UpdateServiceRequest); ok {
			return req
		}
	}
	t.Fatalf("no UpdateService sent; calls %s", f.callNames())
	return nil
}

func TestServiceUpdateFlagForms(t *testing.T) {
	f, host := newUpdateFake(t)
	want := proto.Clone(f.web().Spec).(*api.ServiceSpec)
	stdout, _, err := runCLI("--host", host, "service", "update", "-d",
		"--image", "nginx:1.27", "--replicas", "6",
		"--env-add", "B=3", "--env-add", "C=4", "--env-rm", "A",
		"--label-add", "team=shop", "--label-rm", "tier",
		"--container-label-add", "x=y",
		"--publish-add", "8443:443", "--publish-rm", "53/udp", "--publish-add", "8080:8000",
		"--network-add", "back", "--network-rm", "app",
		"--mount-add", "type=volume,source=data,target=/data", "--mount-rm", "/none",
		"--secret-add", "source=db-pass,target=db", "--secret-rm", "absent",
		"--constraint-rm", "node.role==worker", "--constraint-add", "node.labels.zone==eu",
		"--update-parallelism", "1",
		"web")
	if err != nil {
		t.Fatal(err)
	}
	if stdout != "web\n" {
		t.Errorf("stdout %q", stdout)
	}
	c := want.Task.Container
	c.Image = "nginx:1.27"
	want.Mode = replicated(6)
	c.Env = []string{"B=3", "C=4"}
	want.Annotations.Labels = map[string]string{"team": "shop"}
	c.Labels = map[string]string{"x": "y"}
	want.Endpoint.Ports = []*api.PortConfig{{TargetPort: 8000, PublishedPort: 8080}, {TargetPort: 443, PublishedPort: 8443}} // 8080 replaced in place
	want.Task.Networks = []*api.NetworkAttachmentConfig{{Target: "back"}}
	c.Mounts = []*api.Mount{{Type: api.Mount_TYPE_VOLUME, Source: "data", Target: "/data"}}
	c.Secrets = []*api.SecretReference{{SecretName: "db-pass", Target: &api.FileTarget{Name: "db"}}}
	want.Task.Placement.Constraints = []string{"node.labels.zone==eu"}
	want.Update.Parallelism = ptr(uint64(1))
	req := f.lastUpdate(t)
	if req.ServiceId != webID || req.Version != 7 || req.Rollback {
		t.Errorf("request %v", req)
	}
	if !proto.Equal(req.Spec, want) {
		t.Errorf("spec sent\n%v\nwant\n%v", req.Spec, want)
	}
	if strings.Contains(f.callNames(), "ListTasks") {
		t.Errorf("--detach waited: calls %s", f.callNames())
	}
}

func TestServiceUpdateReplacesWholeLists(t *testing.T) {
	f, host := newUpdateFake(t)
	_, _, err := runCLI("--host", host, "service", "update", "-d", "--env", "ONLY=1", "--publish", "9000:90", "--label", "a=b", "web")
	if err != nil {
		t.Fatal(err)
	}
	spec := f.lastUpdate(t).Spec
	if got := spec.Task.Container.Env; len(got) != 1 || got[0] != "ONLY=1" {
		t.Errorf("env %v", got)
	}
	if got := spec.Endpoint.Ports; len(got) != 1 || got[0].PublishedPort != 9000 {
		t.Errorf("ports %v", got)
	}
	if got := spec.Annotations; got.Name != "web" || len(got.Labels) != 1 || got.Labels["a"] != "b" {
		t.Errorf("annotations %v: the name must stay", got)
	}
}

func TestServiceUpdateNetworkByID(t *testing.T) {
	f, host := newUpdateFake(t)
	// The manager stores network targets as IDs.
	f.web().Spec.Task.Networks = []*api.NetworkAttachmentConfig{{Target: "netappid0123"}, {Target: "netbackid456", Aliases: []string{"old"}}}
	_, _, err := runCLI("--host", host, "service", "update", "-d", "--network-rm", "app", "--network-add", "name=back,alias=new", "web")
	if err != nil {
		t.Fatal(err)
	}
	want := []*api.NetworkAttachmentConfig{{Target: "back", Aliases: []string{"new"}}}
	if got := f.lastUpdate(t).Spec.Task.Networks; len(got) != 1 || !proto.Equal(got[0], want[0]) {
		t.Errorf("networks %v, want %v", got, want)
	}
}

func TestServiceUpdateRetriesOutOfSequence(t *testing.T) {
	old := retryBackoff
	retryBackoff = func(int) time.Duration { return 0 }
	t.Cleanup(func() { retryBackoff = old })
	f, host := newUpdateFake(t)
	f.conflicts = 2
	if _, _, err := runCLI("--host", host, "service", "update", "-d", "--env-add", "Z=1", "web"); err != nil {
		t.Fatal(err)
	}
	if got, want := f.callNames(), "GetService,UpdateService,GetService,UpdateService,GetService,UpdateService"; got != want {
		t.Errorf("calls %s, want %s", got, want)
	}
	if env := f.web().Spec.Task.Container.Env; strings.Join(env, " ") != "A=1 B=2 Z=1" {
		t.Errorf("env %v: the change must be applied once, to the spec read last", env)
	}
}

func TestServiceUpdateNothingToChange(t *testing.T) {
	f, host := newUpdateFake(t)
	stdout, _, err := runCLI("--host", host, "service", "update", "--env-add", "A=1", "--label-rm", "absent", "--publish-add", "8080:80", "web")
	if err != nil {
		t.Fatal(err)
	}
	if want := "service web: nothing to change (its spec already says so; give --force to replace its tasks anyway)\n"; stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	if got := f.callNames(); got != "GetService" {
		t.Errorf("calls %s: nothing should be written or waited for", got)
	}
}

func TestServiceUpdateForce(t *testing.T) {
	f, host := newUpdateFake(t)
	f.web().Spec.Task.ForceUpdate = 4
	want := proto.Clone(f.web().Spec).(*api.ServiceSpec)
	want.Task.ForceUpdate = 5
	if _, _, err := runCLI("--host", host, "service", "update", "-d", "--force", "web"); err != nil {
		t.Fatal(err)
	}
	if got := f.lastUpdate(t).Spec; !proto.Equal(got, want) {
		t.Errorf("spec %v, want the same spec with force_update 5", got)
	}
}

func TestServiceRollback(t *testing.T) {
	for _, args := range [][]string{
		{"service", "update", "--rollback", "-d", "web"},
		{"service", "rollback", "-d", "web"},
	} {
		f, host := newUpdateFake(t)
		prev := proto.Clone(f.web().Spec).(*api.ServiceSpec)
		prev.Task.Container.Image = "nginx:1.24"
		f.web().PreviousSpec = prev
		stdout, _, err := runCLI(append([]string{"--host", host}, args...)...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if stdout != "web\n" {
			t.Errorf("%v: stdout %q", args, stdout)
		}
		req := f.lastUpdate(t)
		if !req.Rollback || req.Spec != nil || req.Version != 7 || req.ServiceId != webID {
			t.Errorf("%v: request %v, want a rollback of version 7 without a spec", args, req)
		}
	}

	f, host := newUpdateFake(t)
	_, _, err := runCLI("--host", host, "service", "rollback", "web")
	if want := "service web has no previous spec to roll back to: it has not been updated since it was created"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
	if got := f.callNames(); got != "GetService" {
		t.Errorf("calls %s", got)
	}
}

// runningTasks are n running tasks of web made from its spec version v.
func runningTasks(n int, v uint64) []*api.Task {
	var tasks []*api.Task
	for slot := uint64(1); slot <= uint64(n); slot++ {
		tasks = append(tasks, &api.Task{Id: "t" + string(rune('0'+slot)), ServiceId: webID, Slot: slot, NodeId: mgr2ID,
			SpecVersion: v, DesiredState: sRunning, Status: &api.TaskStatus{State: sRunning}})
	}
	return tasks
}

func TestServiceUpdateWaits(t *testing.T) {
	shortWaits(t)
	f, host := newUpdateFake(t)
	// A status left by an earlier update is not this update's.
	f.web().UpdateStatus = &api.UpdateStatus{State: api.UpdateStatus_STATE_PAUSED, Message: "an earlier update"}
	old := runningTasks(3, 0)
	f.taskFrames = [][]*api.Task{old, append(old[1:], runningTasks(1, 1)...), runningTasks(3, 1)}
	stdout, _, err := runCLI("--host", host, "service", "update", "--image", "nginx:1.27", "web")
	if err != nil {
		t.Fatal(err)
	}
	bar := "[==================================================>]"
	want := "web\n" +
		"overall progress: 0 out of 3 tasks\n" +
		"overall progress: 1 out of 3 tasks\n" +
		"1/3: running   " + bar + "\n" +
		"overall progress: 3 out of 3 tasks\n" +
		"2/3: running   " + bar + "\n3/3: running   " + bar + "\n" +
		"verify: Service converged\n"
	if stdout != want {
		t.Errorf("got\n%s\nwant\n%s", stdout, want)
	}
}

func TestServiceUpdatePausedFails(t *testing.T) {
	shortWaits(t)
	f, host := newUpdateFake(t)
	f.statusAfterWrite = &api.UpdateStatus{State: api.UpdateStatus_STATE_PAUSED, Message: "update paused: 1 of 3 tasks failed (task: non-zero exit (1))"}
	f.tasks = runningTasks(3, 0)
	stdout, _, err := runCLI("--host", host, "service", "update", "--image", "nginx:broken", "web")
	want := "update of service web paused: update paused: 1 of 3 tasks failed (task: non-zero exit (1)) " +
		"(see shoal service ps web; resume with shoal service update, or go back with shoal service rollback web)"
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
	if stdout != "web\n" {
		t.Errorf("stdout %q", stdout)
	}
}

func TestServiceUpdateRolledBackFails(t *testing.T) {
	shortWaits(t)
	for _, state := range []api.UpdateStatus_State{api.UpdateStatus_STATE_ROLLBACK_STARTED, api.UpdateStatus_STATE_ROLLBACK_COMPLETED} {
		f, host := newUpdateFake(t)
		f.statusAfterWrite = &api.UpdateStatus{State: state, Message: "update rolled back: task 2/3 unhealthy"}
		// The old tasks, which the rollback keeps, run a spec equal to
		// the rolled-back one; here they simply carry its version.
		f.tasks = runningTasks(3, 1)
		stdout, _, err := runCLI("--host", host, "service", "update", "--image", "nginx:unhealthy", "web")
		want := "service web rolled back to its previous spec: update rolled back: task 2/3 unhealthy"
		if err == nil || err.Error() != want {
			t.Errorf("%v: error %v, want %q", state, err, want)
		}
		if !strings.HasPrefix(stdout, "web\nrollback: update rolled back: task 2/3 unhealthy\n") {
			t.Errorf("%v: stdout %q", state, stdout)
		}
	}
}

func TestServiceRollbackWaits(t *testing.T) {
	shortWaits(t)
	f, host := newUpdateFake(t)
	f.web().PreviousSpec = proto.Clone(f.web().Spec).(*api.ServiceSpec)
	f.statusAfterWrite = &api.UpdateStatus{State: api.UpdateStatus_STATE_ROLLBACK_COMPLETED, Message: "manually requested rollback"}
	f.tasks = runningTasks(3, 1)
	stdout, _, err := runCLI("--host", host, "service", "rollback", "-q", "web")
	if err != nil {
		t.Fatalf("a rollback asked for is not a failure: %v", err)
	}
	if stdout != "web\n" {
		t.Errorf("stdout %q", stdout)
	}

	f.statusAfterWrite = &api.UpdateStatus{State: api.UpdateStatus_STATE_ROLLBACK_PAUSED, Message: "rollback paused: 2 tasks failed"}
	_, _, err = runCLI("--host", host, "service", "rollback", "-q", "web")
	if want := "rollback of service web paused: rollback paused: 2 tasks failed (see shoal service ps web)"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

func TestServiceUpdateBadFlagsSendNothing(t *testing.T) {
	f, host := newUpdateFake(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"web"}, "nothing to change: give the flags to change (see shoal service update --help), --force to replace the tasks, or --rollback"},
		{[]string{"-d", "web"}, "nothing to change: give the flags to change (see shoal service update --help), --force to replace the tasks, or --rollback"},
		{[]string{"--name", "www", "web"}, "--name cannot be given to shoal service update: service names cannot be changed; to rename, create a new service and remove this one"},
		{[]string{"--mode", "global", "web"}, "--mode cannot be given to shoal service update: a service's mode cannot change; create a new service and remove this one"},
		{[]string{"--rollback", "--image", "x", "web"}, "--rollback goes back to the previous spec: it cannot be combined with --image"},
		{[]string{"--env-add", "=1", "web"}, `invalid argument "=1" for --env-add: expected KEY=VALUE or KEY`},
		{[]string{"--env-rm", "A=1", "web"}, `invalid argument "A=1" for --env-rm: expected a variable name KEY`},
		{[]string{"--publish-rm", "http", "web"}, `invalid argument "http" for --publish-rm: ` + publishUsage},
		{[]string{"--mount-rm", "data", "web"}, `invalid argument "data" for --mount-rm: expected the mount's target, an absolute path`},
		{[]string{"--mount-add", "target=/x,colour=red", "web"}, `invalid argument "target=/x,colour=red" for --mount-add: unknown key "colour" (` + mountUsage + `)`},
		{[]string{"--replicas", "many", "web"}, `invalid argument "many" for --replicas: not a whole number (examples: 0, 3)`},
		{[]string{"--update-delay", "soon", "web"}, `invalid argument "soon" for --update-delay: not a duration (examples: 10s, 1m30s)`},
		{[]string{"--image", "", "web"}, `invalid argument "" for --image: expected an image reference (examples: nginx:1.25, registry.example.com/shop/api:2)`},
		{[]string{"--force"}, "shoal service update needs exactly one SERVICE (name or ID), got 0 arguments"},
	} {
		_, _, err := runCLI(append([]string{"--host", host, "service", "update"}, tc.args...)...)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
	if calls := f.callNames(); calls != "" {
		t.Errorf("bad flags sent RPCs: %s", calls)
	}

	// What depends on the service is refused once it is read, before any write.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--replicas", "3", "agent"}, "--replicas: cannot scale agent: it is a global service, which runs one task on every eligible node (scale applies to replicated services and replicated jobs)"},
		{[]string{"--max-concurrent", "3", "web"}, "--max-concurrent can only be given for a replicated job, and web is a replicated service"},
	} {
		_, _, err := runCLI(append([]string{"--host", host, "service", "update"}, tc.args...)...)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
	if calls := f.callNames(); strings.Contains(calls, "UpdateService") {
		t.Errorf("refused updates were written: %s", calls)
	}
}

func TestServiceUpdateReplicatedJob(t *testing.T) {
	f, host := newUpdateFake(t)
	if _, _, err := runCLI("--host", host, "service", "update", "-d", "--replicas", "8", "--max-concurrent", "4", "migrate"); err != nil {
		t.Fatal(err)
	}
	j := f.lastUpdate(t).Spec.Mode.GetReplicatedJob()
	if j.GetTotalCompletions() != 8 || j.GetMaxConcurrent() != 4 {
		t.Errorf("job %v", j)
	}
}

// A global service whose update the managers completed while a paused
// node keeps its old task: the waiting ends, successfully, and says why.
func TestServiceUpdateGlobalCompletedWithPausedNode(t *testing.T) {
	shortWaits(t)
	f, host := newUpdateFake(t)
	f.statusAfterWrite = &api.UpdateStatus{State: api.UpdateStatus_STATE_COMPLETED, Message: "update completed", SpecVersion: 1}
	f.tasks = []*api.Task{
		{Id: "new1", ServiceId: agentID, NodeId: selfID, SpecVersion: 1, DesiredState: sRunning, Status: &api.TaskStatus{State: sRunning}},
		{Id: "old2", ServiceId: agentID, NodeId: worker1, SpecVersion: 0, DesiredState: sRunning, Status: &api.TaskStatus{State: sRunning}},
	}
	stdout, _, err := runCLI("--host", host, "service", "update", "--wait-timeout", "5s", "--image", "shoal/agent:2", "agent")
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if !strings.Contains(stdout, "update completed: a paused node keeps its old task until it is active again") {
		t.Errorf("stdout %q", stdout)
	}
}

// The tasks all run the new spec before the managers are done watching
// the last of them: the waiting goes on until the update completes, and
// fails if it pauses meanwhile.
func TestServiceUpdateWaitsForTheLastMonitor(t *testing.T) {
	shortWaits(t)
	updating := &api.UpdateStatus{State: api.UpdateStatus_STATE_UPDATING, Message: "update in progress", SpecVersion: 1}
	for _, tc := range []struct {
		last    *api.UpdateStatus
		wantErr string
	}{
		{&api.UpdateStatus{State: api.UpdateStatus_STATE_COMPLETED, Message: "update completed", SpecVersion: 1}, ""},
		{&api.UpdateStatus{State: api.UpdateStatus_STATE_PAUSED, Message: "update paused: task t3 (web.3) FAILED", SpecVersion: 1}, "update of service web paused"},
	} {
		f, host := newUpdateFake(t)
		f.tasks = runningTasks(3, 1)
		frames := []*api.UpdateStatus{}
		for range 20 {
			frames = append(frames, updating)
		}
		f.statusFrames = append(frames, tc.last)
		_, _, err := runCLI("--host", host, "service", "update", "--image", "nginx:1.27", "web")
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%v: %v", tc.last.GetState(), err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%v: error %v, want %q", tc.last.GetState(), err, tc.wantErr)
		}
		f.mu.Lock()
		left := len(f.statusFrames)
		f.mu.Unlock()
		if left != 1 {
			t.Errorf("%v: the waiting ended with %d statuses still to show", tc.last.GetState(), left)
		}
	}
}
