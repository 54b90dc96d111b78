package controlapi

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

func TestServiceLifecycle(t *testing.T) {
	srv, st, _ := newTestServer(t)
	ctx := context.Background()

	spec := validSpec()
	created, err := srv.CreateService(ctx, &api.CreateServiceRequest{Spec: spec})
	must(t, err)
	svc := created.GetService()
	if len(svc.GetId()) == 0 || svc.GetSpecVersion() != 1 || svc.GetMeta().GetVersion() == 0 {
		t.Fatalf("created service: %v", svc)
	}
	if !proto.Equal(svc.GetSpec(), validSpec()) {
		t.Fatalf("spec was not stored as given:\n got %v\nwant %v", svc.GetSpec(), validSpec())
	}
	if svc.GetPreviousSpec() != nil {
		t.Fatal("a new service has a previous spec")
	}

	// Get by ID, prefix and name.
	for _, ref := range []string{svc.GetId(), svc.GetId()[:8], "web"} {
		got, err := srv.GetService(ctx, &api.GetServiceRequest{ServiceId: ref})
		must(t, err)
		if got.GetService().GetId() != svc.GetId() {
			t.Fatalf("GetService(%s) = %s", ref, got.GetService().GetId())
		}
	}
	_, err = srv.GetService(ctx, &api.GetServiceRequest{ServiceId: "nosuch"})
	wantCode(t, err, codes.NotFound, "service nosuch not found")
	_, err = srv.GetService(ctx, &api.GetServiceRequest{})
	wantCode(t, err, codes.InvalidArgument)

	// Responses are copies.
	created.Service.Spec.Annotations.Name = "changed"
	if storeServices(st)[0].GetSpec().GetAnnotations().GetName() != "web" {
		t.Fatal("changing a response changed the store")
	}

	// A second service, for lists.
	other := validSpec()
	other.Annotations = &api.Annotations{Name: "db", Labels: map[string]string{"tier": "back"}}
	other.Endpoint = nil
	dbResp, err := srv.CreateService(ctx, &api.CreateServiceRequest{Spec: other})
	must(t, err)
	dbID := dbResp.GetService().GetId()

	list := func(req *api.ListServicesRequest) []string {
		t.Helper()
		resp, err := srv.ListServices(ctx, req)
		must(t, err)
		var names []string
		for _, s := range resp.GetServices() {
			names = append(names, s.GetSpec().GetAnnotations().GetName())
			if resp.GetCounts()[s.GetId()] == nil {
				t.Fatalf("no count for %s", s.GetId())
			}
		}
		return names
	}
	if got := list(&api.ListServicesRequest{}); len(got) != 2 {
		t.Fatalf("list all: %v", got)
	}
	if got := list(&api.ListServicesRequest{Names: []string{"db", "nosuch"}}); len(got) != 1 || got[0] != "db" {
		t.Fatalf("list by name: %v", got)
	}
	if got := list(&api.ListServicesRequest{Labels: []string{"tier=front"}}); len(got) != 1 || got[0] != "web" {
		t.Fatalf("list by label value: %v", got)
	}
	if got := list(&api.ListServicesRequest{Labels: []string{"tier"}}); len(got) != 2 {
		t.Fatalf("list by label key: %v", got)
	}
	if got := list(&api.ListServicesRequest{Labels: []string{"tier=front", "tier=back"}}); len(got) != 0 {
		t.Fatalf("labels are ANDed: %v", got)
	}
	_, err = srv.ListServices(ctx, &api.ListServicesRequest{Labels: []string{"=x"}})
	wantCode(t, err, codes.InvalidArgument, "labels[0]")

	// Update: version bump, previous spec kept, spec stored as given.
	v2 := validSpec()
	v2.Task.Container.Image = "nginx:1.28"
	upd, err := srv.UpdateService(ctx, &api.UpdateServiceRequest{
		ServiceId: svc.GetId(), Version: svc.GetMeta().GetVersion(), Spec: v2,
	})
	must(t, err)
	u := upd.GetService()
	if u.GetSpecVersion() != 2 || u.GetSpec().GetTask().GetContainer().GetImage() != "nginx:1.28" ||
		u.GetPreviousSpec().GetTask().GetContainer().GetImage() != "nginx:1.27" ||
		u.GetMeta().GetVersion() <= svc.GetMeta().GetVersion() {
		t.Fatalf("after update: %v", u)
	}

	// Rollback swaps the specs; the request's spec is ignored.
	ignored := validSpec()
	ignored.Task.Container.Image = "ignored:1"
	rb, err := srv.UpdateService(ctx, &api.UpdateServiceRequest{
		ServiceId: "web", Version: u.GetMeta().GetVersion(), Rollback: true, Spec: ignored,
	})
	must(t, err)
	r := rb.GetService()
	if r.GetSpecVersion() != 3 || r.GetSpec().GetTask().GetContainer().GetImage() != "nginx:1.27" ||
		r.GetPreviousSpec().GetTask().GetContainer().GetImage() != "nginx:1.28" {
		t.Fatalf("after rollback: %v", r)
	}

	// Remove: the service goes, its tasks are marked for removal.
	seed(t, st, func(tx store.Tx) error {
		for _, tk := range []*api.Task{
			task("t1", svc.GetId(), "n1", api.TaskState_TASK_STATE_RUNNING, api.TaskState_TASK_STATE_RUNNING),
			task("t2", svc.GetId(), "n2", api.TaskState_TASK_STATE_SHUTDOWN, api.TaskState_TASK_STATE_SHUTDOWN),
			task("t3", svc.GetId(), "", api.TaskState_TASK_STATE_ORPHANED, api.TaskState_TASK_STATE_PENDING),
			task("t4", dbID, "n1", api.TaskState_TASK_STATE_RUNNING, api.TaskState_TASK_STATE_RUNNING),
		} {
			if err := tx.CreateTask(tk); err != nil {
				return err
			}
		}
		return nil
	})
	_, err = srv.RemoveService(ctx, &api.RemoveServiceRequest{ServiceId: "web"})
	must(t, err)
	if s := storeServices(st); len(s) != 1 || s[0].GetId() != dbID {
		t.Fatalf("after remove: %v", s)
	}
	for id, want := range map[string]api.TaskState{
		"t1": api.TaskState_TASK_STATE_REMOVE,
		"t2": api.TaskState_TASK_STATE_REMOVE,
		"t3": api.TaskState_TASK_STATE_ORPHANED, // already beyond REMOVE
		"t4": api.TaskState_TASK_STATE_RUNNING,  // another service's
	} {
		if got := getTask(st, id).GetDesiredState(); got != want {
			t.Errorf("task %s desired state %v, want %v", id, got, want)
		}
	}
	_, err = srv.RemoveService(ctx, &api.RemoveServiceRequest{ServiceId: "web"})
	wantCode(t, err, codes.NotFound, "service web not found")
}

func TestCreateServiceDuplicateName(t *testing.T) {
	srv, st, _ := newTestServer(t)
	ctx := context.Background()
	_, err := srv.CreateService(ctx, &api.CreateServiceRequest{Spec: validSpec()})
	must(t, err)
	before := storeServices(st)

	dup := validSpec()
	dup.Task.Container.Image = "other:1"
	_, err = srv.CreateService(ctx, &api.CreateServiceRequest{Spec: dup})
	wantCode(t, err, codes.AlreadyExists, `"web"`)
	after := storeServices(st)
	if len(after) != 1 || !proto.Equal(after[0], before[0]) {
		t.Fatalf("a refused create wrote: %v", after)
	}
}

func TestCreateServiceInvalid(t *testing.T) {
	srv, st, _ := newTestServer(t)
	before := st.AppliedIndex()
	spec := validSpec()
	spec.Task.Container.StopGracePeriod = i64(-5e9)
	_, err := srv.CreateService(context.Background(), &api.CreateServiceRequest{Spec: spec})
	wantCode(t, err, codes.InvalidArgument,
		"invalid spec: task.container.stop_grace_period: must not be negative, got -5s")
	if s := storeServices(st); len(s) != 0 {
		t.Fatalf("an invalid create wrote: %v", s)
	}
	if st.AppliedIndex() != before {
		t.Fatalf("an invalid create proposed a command (applied index %d, was %d)", st.AppliedIndex(), before)
	}
	_, err = srv.CreateService(context.Background(), &api.CreateServiceRequest{})
	wantCode(t, err, codes.InvalidArgument, "spec")
}

func TestUpdateServiceRefusals(t *testing.T) {
	srv, st, _ := newTestServer(t)
	ctx := context.Background()
	created, err := srv.CreateService(ctx, &api.CreateServiceRequest{Spec: validSpec()})
	must(t, err)
	svc := created.GetService()
	version := svc.GetMeta().GetVersion()
	unchanged := func() {
		t.Helper()
		s := storeServices(st)
		if len(s) != 1 || !proto.Equal(s[0], svc) {
			t.Fatalf("a refused update wrote: %v", s)
		}
	}

	v2 := validSpec()
	v2.Task.Container.Image = "nginx:2"

	// Stale version.
	_, err = srv.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: svc.GetId(), Version: version - 1, Spec: v2})
	wantCode(t, err, codes.FailedPrecondition,
		"update out of sequence: the object changed since you read it; read it again and retry")
	unchanged()

	// Invalid spec.
	bad := validSpec()
	bad.Endpoint.Ports[0].TargetPort = 0
	_, err = srv.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: svc.GetId(), Version: version, Spec: bad})
	wantCode(t, err, codes.InvalidArgument, "endpoint.ports[0].target_port")
	unchanged()

	// Rename.
	renamed := validSpec()
	renamed.Annotations.Name = "web2"
	_, err = srv.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: svc.GetId(), Version: version, Spec: renamed})
	wantCode(t, err, codes.InvalidArgument, "service names cannot be changed")
	unchanged()

	// Mode kind change.
	global := validSpec()
	global.Mode = &api.ServiceMode{Mode: &api.ServiceMode_Global{Global: &api.Global{}}}
	global.Task.Placement.MaxReplicas = 0
	_, err = srv.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: svc.GetId(), Version: version, Spec: global})
	wantCode(t, err, codes.InvalidArgument, "mode", "replicated", "global")
	unchanged()

	// Rollback without a previous spec.
	_, err = srv.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: svc.GetId(), Version: version, Rollback: true})
	wantCode(t, err, codes.FailedPrecondition, "no previous spec")
	unchanged()

	// Unknown service.
	_, err = srv.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: "nosuch", Version: version, Spec: v2})
	wantCode(t, err, codes.NotFound, "service nosuch not found")
	unchanged()

	// Two updates from the same read: the second one is stale.
	_, err = srv.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: svc.GetId(), Version: version, Spec: v2})
	must(t, err)
	_, err = srv.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: svc.GetId(), Version: version, Spec: validSpec()})
	wantCode(t, err, codes.FailedPrecondition, "update out of sequence")
}

func TestServiceLookupAmbiguity(t *testing.T) {
	srv, st, _ := newTestServer(t)
	ctx := context.Background()
	mk := func(id, name string) *api.Service {
		s := validSpec()
		s.Annotations.Name = name
		return &api.Service{Id: id, Spec: s, SpecVersion: 1}
	}
	seed(t, st, func(tx store.Tx) error {
		for _, s := range []*api.Service{mk("abc123", "one"), mk("abd456", "two"), mk("xyz789", "abc")} {
			if err := tx.CreateService(s); err != nil {
				return err
			}
		}
		return nil
	})
	_, err := srv.GetService(ctx, &api.GetServiceRequest{ServiceId: "ab"})
	wantCode(t, err, codes.InvalidArgument,
		"service prefix ab is ambiguous: abc123 (one), abd456 (two); use more characters")
	for ref, want := range map[string]string{
		"abd":    "abd456",
		"abc123": "abc123",
		"abc":    "xyz789", // a name comes before an ID prefix
		"two":    "abd456",
	} {
		got, err := srv.GetService(ctx, &api.GetServiceRequest{ServiceId: ref})
		must(t, err)
		if got.GetService().GetId() != want {
			t.Errorf("GetService(%s) = %s, want %s", ref, got.GetService().GetId(), want)
		}
	}
	_, err = srv.RemoveService(ctx, &api.RemoveServiceRequest{ServiceId: "ab"})
	wantCode(t, err, codes.InvalidArgument, "ambiguous")
	if len(storeServices(st)) != 3 {
		t.Fatal("an ambiguous remove removed something")
	}
}

func TestListServicesCounts(t *testing.T) {
	srv, st, _ := newTestServer(t)
	ctx := context.Background()
	mode := map[string]*api.ServiceMode{
		"rep":  {Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 5}}},
		"glob": {Mode: &api.ServiceMode_Global{Global: &api.Global{}}},
		"rjob": {Mode: &api.ServiceMode_ReplicatedJob{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: 2, TotalCompletions: 4}}},
		"gjob": {Mode: &api.ServiceMode_GlobalJob{GlobalJob: &api.GlobalJob{}}},
	}
	const (
		run      = api.TaskState_TASK_STATE_RUNNING
		complete = api.TaskState_TASK_STATE_COMPLETE
		shutdown = api.TaskState_TASK_STATE_SHUTDOWN
		pending  = api.TaskState_TASK_STATE_PENDING
		failed   = api.TaskState_TASK_STATE_FAILED
	)
	seed(t, st, func(tx store.Tx) error {
		for id, m := range mode {
			s := validSpec()
			s.Annotations.Name = id
			s.Mode = m
			if err := tx.CreateService(&api.Service{Id: id, Spec: s, SpecVersion: 1}); err != nil {
				return err
			}
		}
		for _, tk := range []*api.Task{
			task("r1", "rep", "n1", run, run),
			task("r2", "rep", "n2", run, run),
			task("r3", "rep", "", run, pending),
			task("r4", "rep", "n1", shutdown, run), // being stopped: not counted as running
			task("g1", "glob", "n1", run, run),
			task("g2", "glob", "n2", run, failed),
			task("g3", "glob", "n3", shutdown, shutdown),
			task("j1", "rjob", "n1", complete, complete),
			task("j2", "rjob", "n2", complete, run),
			task("j3", "rjob", "n3", run, complete),
			task("k1", "gjob", "n1", complete, complete),
			task("k2", "gjob", "n2", complete, run),
			task("k3", "gjob", "n3", shutdown, complete),
		} {
			if err := tx.CreateTask(tk); err != nil {
				return err
			}
		}
		return nil
	})
	resp, err := srv.ListServices(ctx, &api.ListServicesRequest{})
	must(t, err)
	want := map[string]*api.ReplicaCount{
		"rep":  {Running: 2, Desired: 5},
		"glob": {Running: 1, Desired: 1}, // g2 failed: its slot is not wanted any more
		"rjob": {Running: 1, Desired: 4, Completed: 2},
		"gjob": {Running: 1, Desired: 2, Completed: 2},
	}
	for id, w := range want {
		if got := resp.GetCounts()[id]; !proto.Equal(got, w) {
			t.Errorf("counts[%s] = %v, want %v", id, got, w)
		}
	}
}

// failingProposer fails every proposal as a Raft layer without a leader
// would.
type failingProposer struct{ err error }

func (p failingProposer) Propose(context.Context, *api.Command) (uint64, error) { return 0, p.err }

func TestStoreErrorsPassThrough(t *testing.T) {
	noLeader := errors.New("raft: no leader")
	st := store.New(failingProposer{noLeader})
	srv := NewServer(st, nil)
	spec := validSpec()
	spec.Task.Networks = nil // this store holds no network
	_, err := srv.CreateService(context.Background(), &api.CreateServiceRequest{Spec: spec})
	if !errors.Is(err, noLeader) {
		t.Fatalf("want the proposer's error wrapped, got %v", err)
	}
	if _, ok := status.FromError(err); ok {
		t.Fatalf("the proposer's error became a status: %v", err)
	}
}

// Concurrent updates from the same read: exactly one wins, the others
// are told to read again, whichever check (the handler's or the store's
// at apply time) catches them.
func TestUpdateServiceConcurrent(t *testing.T) {
	srv, st, _ := newTestServer(t)
	ctx := context.Background()
	created, err := srv.CreateService(ctx, &api.CreateServiceRequest{Spec: validSpec()})
	must(t, err)
	svc := created.GetService()

	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			spec := validSpec()
			spec.Task.Container.Image = fmt.Sprintf("nginx:%d", i)
			_, errs[i] = srv.UpdateService(ctx, &api.UpdateServiceRequest{
				ServiceId: svc.GetId(), Version: svc.GetMeta().GetVersion(), Spec: spec,
			})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
			continue
		}
		wantCode(t, err, codes.FailedPrecondition, "update out of sequence")
	}
	if won != 1 {
		t.Fatalf("%d updates won, want 1", won)
	}
	if v := storeServices(st)[0].GetSpecVersion(); v != 2 {
		t.Fatalf("spec version %d, want 2", v)
	}
}
