package main

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

func TestParseScaleArgs(t *testing.T) {
	got, err := parseScaleArgs([]string{"web=6", "api=0", "kq8p7l2sd6ya=12"})
	want := []scaleTarget{{"web", 6}, {"api", 0}, {"kq8p7l2sd6ya", 12}}
	if err != nil || len(got) != len(want) {
		t.Fatalf("got %v, %v", got, err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("target %d: %v, want %v", i, got[i], want[i])
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "shoal service scale needs at least one SERVICE=REPLICAS (example: web=3)"},
		{[]string{"web"}, `invalid argument "web": expected SERVICE=REPLICAS (example: web=3)`},
		{[]string{"6"}, `invalid argument "6": expected SERVICE=REPLICAS (example: web=3)`},
		{[]string{"web", "6"}, `invalid argument "web": expected SERVICE=REPLICAS (example: web=3)`},
		{[]string{"=6"}, `invalid argument "=6": no service before "=" (expected SERVICE=REPLICAS, example: web=3)`},
		{[]string{"api="}, `invalid argument "api=": no number of replicas after "=" (example: api=3)`},
		{[]string{"api=three"}, `invalid argument "api=three": the number of replicas must be a whole number, 0 or more (example: api=3)`},
		{[]string{"api=-1"}, `invalid argument "api=-1": the number of replicas must be a whole number, 0 or more (example: api=3)`},
		{[]string{"api=1.5"}, `invalid argument "api=1.5": the number of replicas must be a whole number, 0 or more (example: api=3)`},
		{[]string{"web=2", "api=3", "web=4"}, `invalid argument "web=4": service web is already scaled by "web=2"`},
	} {
		if _, err := parseScaleArgs(tc.args); err == nil || err.Error() != tc.want {
			t.Errorf("%q: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestSetReplicas(t *testing.T) {
	job := func(max, total uint64) *api.ServiceSpec {
		return &api.ServiceSpec{Mode: &api.ServiceMode{Mode: &api.ServiceMode_ReplicatedJob{
			ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: max, TotalCompletions: total}}}}
	}
	rep := func(n uint64) *api.ServiceSpec { return &api.ServiceSpec{Mode: replicated(n)} }
	for _, tc := range []struct {
		name    string
		spec    *api.ServiceSpec
		n       uint64
		changed bool
		want    *api.ServiceSpec
		err     string
	}{
		{"replicated up", rep(3), 6, true, rep(6), ""},
		{"replicated to zero", rep(3), 0, true, rep(0), ""},
		{"replicated unchanged", rep(3), 3, false, rep(3), ""},
		{"job up keeps max concurrent", job(2, 5), 8, true, job(2, 8), ""},
		{"job down lowers max concurrent", job(5, 5), 3, true, job(3, 3), ""},
		{"job unchanged", job(2, 5), 5, false, job(2, 5), ""},
		{"job to zero", job(1, 5), 0, false, job(1, 5), "cannot scale web to 0: it is a replicated job, which needs at least 1 completion"},
		{"global", &api.ServiceSpec{Mode: globalMode()}, 3, false, &api.ServiceSpec{Mode: globalMode()},
			"cannot scale web: it is a global service, which runs one task on every eligible node (scale applies to replicated services and replicated jobs)"},
		{"global job", &api.ServiceSpec{Mode: globalJob()}, 3, false, &api.ServiceSpec{Mode: globalJob()},
			"cannot scale web: it is a global job, which runs one task on every eligible node (scale applies to replicated services and replicated jobs)"},
	} {
		changed, err := setReplicas("web", tc.spec, tc.n)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || changed != tc.changed || !proto.Equal(tc.spec, tc.want) {
			t.Errorf("%s: changed %v, %v, spec %v; want changed %v, spec %v", tc.name, changed, err, tc.spec, tc.changed, tc.want)
		}
	}
}

func TestServiceScaleCLI(t *testing.T) {
	old := retryBackoff
	retryBackoff = func(int) time.Duration { return 0 }
	t.Cleanup(func() { retryBackoff = old })
	f := newFake()
	f.conflicts = 1
	host := startFake(t, f)
	stdout, _, err := runCLI("--host", host, "service", "scale", "-d", "web=6", "agent=2", "api=2", "migrate=1")
	want := "cannot scale agent: it is a global service, which runs one task on every eligible node (scale applies to replicated services and replicated jobs)"
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
	if want := "web scaled to 6\napi scaled to 2\nmigrate scaled to 1\n"; stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	// web: out of sequence once, then written; agent: refused; api: unchanged,
	// nothing written; migrate: written.
	if got, want := f.callNames(), "GetService,UpdateService,GetService,UpdateService,GetService,GetService,GetService,UpdateService"; got != want {
		t.Errorf("calls %s, want %s", got, want)
	}
	req := f.sent[3].(*api.UpdateServiceRequest)
	if req.ServiceId != webID || req.Version != 7 || req.Spec.Mode.GetReplicated().GetReplicas() != 6 {
		t.Errorf("update sent %v", req)
	}
	if got := req.Spec.Task.Container.Image; got != "nginx:1.25@sha256:0123456789abcdef" {
		t.Errorf("the rest of the spec was not kept: image %q", got)
	}
	job := f.sent[7].(*api.UpdateServiceRequest).Spec.Mode.GetReplicatedJob()
	if job.GetTotalCompletions() != 1 || job.GetMaxConcurrent() != 1 {
		t.Errorf("job scaled to %v", job)
	}

	f.calls, f.sent = nil, nil
	_, _, err = runCLI("--host", host, "service", "scale", "web=x")
	if err == nil || !strings.Contains(err.Error(), `invalid argument "web=x"`) || f.callNames() != "" {
		t.Errorf("bad argument: %v, calls %s", err, f.callNames())
	}
	_, _, err = runCLI("--host", host, "service", "scale", "-d", "ghost=1")
	if err == nil || err.Error() != `no service "ghost"` {
		t.Errorf("missing service: %v", err)
	}
}

func TestServiceScaleWaits(t *testing.T) {
	shortWaits(t)
	f := newFake()
	web := f.services[0]
	running := func(slot uint64) *api.Task {
		return &api.Task{Id: "t" + string(rune('0'+slot)), ServiceId: webID, Slot: slot, NodeId: mgr2ID,
			Spec: proto.Clone(web.Spec.Task).(*api.TaskSpec), SpecVersion: 0, DesiredState: sRunning,
			Status: &api.TaskStatus{State: sRunning}}
	}
	f.taskFrames = [][]*api.Task{
		{running(1), running(2), running(3)},
		{running(1), running(2), running(3), running(4)},
	}
	host := startFake(t, f)
	stdout, _, err := runCLI("--host", host, "service", "scale", "--wait-timeout", "100ms", "web=4", "api=2")
	wantErr := "service api did not converge within 100ms (overall progress: 0 out of 2 tasks); it keeps converging in the background: see shoal service ps api"
	if err == nil || err.Error() != wantErr {
		t.Errorf("error %v, want %q", err, wantErr)
	}
	bar := "[==================================================>]"
	want := "web scaled to 4\napi scaled to 2\n" +
		"web:\n" +
		"overall progress: 3 out of 4 tasks\n" +
		"1/4: running   " + bar + "\n2/4: running   " + bar + "\n3/4: running   " + bar + "\n" +
		"overall progress: 4 out of 4 tasks\n" +
		"4/4: running   " + bar + "\n" +
		"verify: Service converged\n" +
		"api:\n" +
		"overall progress: 0 out of 2 tasks\n"
	if stdout != want {
		t.Errorf("got\n%s\nwant\n%s", stdout, want)
	}
}
