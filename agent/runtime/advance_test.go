package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/shoalhq/shoal/proto/api"
)

// script is a controller whose answers the test sets and whose calls it
// records.
type script struct {
	calls                       []string
	prepare, start, wait        error
	shutdown, terminate, remove error
	exitCode                    int
	container                   *api.ContainerStatus
}

func (s *script) Prepare(context.Context) error {
	s.calls = append(s.calls, "prepare")
	return s.prepare
}
func (s *script) Start(context.Context) error { s.calls = append(s.calls, "start"); return s.start }
func (s *script) Wait(context.Context) (int, error) {
	s.calls = append(s.calls, "wait")
	return s.exitCode, s.wait
}
func (s *script) Shutdown(context.Context) error {
	s.calls = append(s.calls, "shutdown")
	return s.shutdown
}
func (s *script) Terminate(context.Context) error {
	s.calls = append(s.calls, "terminate")
	return s.terminate
}
func (s *script) Remove(context.Context) error { s.calls = append(s.calls, "remove"); return s.remove }
func (s *script) Close() error                 { return nil }

// statusScript is a script that also describes its container.
type statusScript struct{ script }

func (s *statusScript) ContainerStatus(context.Context) (*api.ContainerStatus, error) {
	return s.container, nil
}

const (
	sNew       = api.TaskState_TASK_STATE_NEW
	sAssigned  = api.TaskState_TASK_STATE_ASSIGNED
	sAccepted  = api.TaskState_TASK_STATE_ACCEPTED
	sPreparing = api.TaskState_TASK_STATE_PREPARING
	sReady     = api.TaskState_TASK_STATE_READY
	sStarting  = api.TaskState_TASK_STATE_STARTING
	sRunning   = api.TaskState_TASK_STATE_RUNNING
	sComplete  = api.TaskState_TASK_STATE_COMPLETE
	sShutdown  = api.TaskState_TASK_STATE_SHUTDOWN
	sFailed    = api.TaskState_TASK_STATE_FAILED
	sRejected  = api.TaskState_TASK_STATE_REJECTED
	sRemove    = api.TaskState_TASK_STATE_REMOVE
)

func TestAdvanceOneStep(t *testing.T) {
	boom := errors.New("boom")
	temp := fmt.Errorf("%w: runtime unreachable", ErrTemporary)
	tests := []struct {
		name      string
		state     api.TaskState
		desired   api.TaskState
		ctlr      script
		want      api.TaskState // 0 with wantErr: no status
		wantErr   error         // errors.Is target; nil for a status
		wantCalls []string
		errText   string // substring of Status.Err
	}{
		{name: "assigned is accepted", state: sAssigned, desired: sRunning, want: sAccepted},
		{name: "new is accepted", state: sNew, desired: sRunning, want: sAccepted},
		{name: "accepted starts preparing", state: sAccepted, desired: sRunning, want: sPreparing},
		{name: "prepare succeeds", state: sPreparing, desired: sRunning, want: sReady, wantCalls: []string{"prepare"}},
		{name: "prepare rejected", state: sPreparing, desired: sRunning, ctlr: script{prepare: fmt.Errorf("%w: no such image", ErrTaskRejected)},
			want: sRejected, wantCalls: []string{"prepare"}, errText: "no such image"},
		{name: "prepare fails permanently", state: sPreparing, desired: sRunning, ctlr: script{prepare: boom},
			want: sRejected, wantCalls: []string{"prepare"}, errText: "boom"},
		{name: "prepare fails for now", state: sPreparing, desired: sRunning, ctlr: script{prepare: temp},
			wantErr: ErrTemporary, wantCalls: []string{"prepare"}},
		{name: "ready is held while desired is ready", state: sReady, desired: sReady, wantErr: ErrNoop},
		{name: "desired ready prepares", state: sPreparing, desired: sReady, want: sReady, wantCalls: []string{"prepare"}},
		{name: "ready starts when desired running", state: sReady, desired: sRunning, want: sStarting},
		{name: "start succeeds", state: sStarting, desired: sRunning, want: sRunning, wantCalls: []string{"start"}},
		{name: "start fails", state: sStarting, desired: sRunning, ctlr: script{start: boom},
			want: sFailed, wantCalls: []string{"start"}, errText: "boom"},
		{name: "start fails for now", state: sStarting, desired: sRunning, ctlr: script{start: temp},
			wantErr: ErrTemporary, wantCalls: []string{"start"}},
		{name: "exit 0 completes", state: sRunning, desired: sRunning, want: sComplete, wantCalls: []string{"wait"}},
		{name: "exit 3 fails", state: sRunning, desired: sRunning, ctlr: script{exitCode: 3},
			want: sFailed, wantCalls: []string{"wait"}, errText: "exit code 3"},
		{name: "unhealthy is stopped and fails", state: sRunning, desired: sRunning, ctlr: script{wait: ErrUnhealthy},
			want: sFailed, wantCalls: []string{"wait", "shutdown"}, errText: "container unhealthy"},
		{name: "oom kill keeps its exit code", state: sRunning, desired: sRunning, ctlr: script{exitCode: 137, wait: errors.New("exit code 137: the task was killed for exceeding its memory limit")},
			want: sFailed, wantCalls: []string{"wait"}, errText: "memory limit"},
		{name: "gone container fails", state: sRunning, desired: sRunning, ctlr: script{wait: ErrContainerGone},
			want: sFailed, wantCalls: []string{"wait"}, errText: "no longer exists"},
		{name: "running shut down", state: sRunning, desired: sShutdown, want: sShutdown, wantCalls: []string{"shutdown"}},
		{name: "desired remove shuts down", state: sRunning, desired: sRemove, want: sShutdown, wantCalls: []string{"shutdown"}},
		{name: "ready shut down", state: sReady, desired: sShutdown, want: sShutdown, wantCalls: []string{"shutdown"}},
		{name: "interrupted prepare shut down", state: sPreparing, desired: sShutdown, want: sShutdown, wantCalls: []string{"shutdown"}},
		{name: "never prepared needs no controller", state: sAssigned, desired: sShutdown, want: sShutdown},
		{name: "failed shutdown terminates", state: sRunning, desired: sShutdown, ctlr: script{shutdown: boom},
			want: sShutdown, wantCalls: []string{"shutdown", "terminate"}},
		{name: "failed stop is retried", state: sRunning, desired: sShutdown, ctlr: script{shutdown: boom, terminate: boom},
			wantErr: boom, wantCalls: []string{"shutdown", "terminate"}},
		{name: "complete stays", state: sComplete, desired: sShutdown, wantErr: ErrNoop},
		{name: "failed stays", state: sFailed, desired: sRunning, wantErr: ErrNoop},
		{name: "shutdown stays", state: sShutdown, desired: sRemove, wantErr: ErrNoop},
		{name: "rejected stays", state: sRejected, desired: sRunning, wantErr: ErrNoop},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.ctlr
			task := &api.Task{Id: "t1", DesiredState: tc.desired}
			cur := &api.TaskStatus{State: tc.state, Message: "before", Err: "old error"}
			got, err := Advance(context.Background(), task, cur, &c)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || got != nil {
					t.Fatalf("Advance = %v, %v; want no status and an error wrapping %v", got, err, tc.wantErr)
				}
			} else {
				if err != nil {
					t.Fatalf("Advance: %v", err)
				}
				if got.State != tc.want {
					t.Fatalf("state %v, want %v", got.State, tc.want)
				}
				if got.Timestamp == 0 || got.Message == "before" {
					t.Errorf("status not stamped: %v", got)
				}
				if tc.errText == "" && got.Err != "" {
					t.Errorf("Err %q carried over, want empty", got.Err)
				}
				if !strings.Contains(got.Err, tc.errText) {
					t.Errorf("Err %q, want it to mention %q", got.Err, tc.errText)
				}
				if code := tc.ctlr.exitCode; code != 0 && got.GetContainer().GetExitCode() != int32(code) {
					t.Errorf("exit code %d recorded, want %d", got.GetContainer().GetExitCode(), code)
				}
			}
			if !slices.Equal(c.calls, tc.wantCalls) {
				t.Errorf("controller calls %v, want %v", c.calls, tc.wantCalls)
			}
			if cur.State != tc.state || cur.Message != "before" || task.DesiredState != tc.desired {
				t.Errorf("Advance changed its inputs: %v %v", cur, task)
			}
		})
	}
}

// TestAdvanceWalksToRunningAndBack drives a task through its whole life
// the way the agent does: call Advance until ErrNoop, then raise the
// desired state.
func TestAdvanceWalksToRunningAndBack(t *testing.T) {
	c := &statusScript{script: script{container: &api.ContainerStatus{ContainerId: "c1", Pid: 42}}}
	task := &api.Task{Id: "t1", DesiredState: sReady}
	st := &api.TaskStatus{State: sAssigned}
	var states []api.TaskState
	drive := func() {
		for {
			next, err := Advance(context.Background(), task, st, c)
			if errors.Is(err, ErrNoop) {
				return
			}
			if err != nil {
				t.Fatalf("Advance from %v: %v", st.State, err)
			}
			st = next
			states = append(states, st.State)
			if st.State == sRunning {
				return // Wait would block in a real controller
			}
		}
	}
	drive()
	task.DesiredState = sRunning
	drive()
	if st.Container.GetContainerId() != "c1" || st.Container.GetPid() != 42 {
		t.Errorf("running status has no container: %v", st)
	}
	task.DesiredState = sShutdown
	drive()
	want := []api.TaskState{sAccepted, sPreparing, sReady, sStarting, sRunning, sShutdown}
	if !slices.Equal(states, want) {
		t.Fatalf("states %v, want %v", states, want)
	}
	if want := []string{"prepare", "start", "shutdown"}; !slices.Equal(c.calls, want) {
		t.Fatalf("calls %v, want %v", c.calls, want)
	}
}

func TestAdvanceInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c := &script{wait: context.Canceled}
	got, err := Advance(ctx, &api.Task{DesiredState: sRunning}, &api.TaskStatus{State: sRunning}, c)
	if got != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("Advance with an ended context = %v, %v; want no status and context.Canceled", got, err)
	}
}

// healthScript is a script whose health checker answers from a list,
// one answer per call.
type healthScript struct {
	script
	health []healthAnswer
}

type healthAnswer struct {
	h   string
	err error
}

func (s *healthScript) Health(_ context.Context, last string) (string, error) {
	s.calls = append(s.calls, "health("+last+")")
	a := s.health[0]
	s.health = s.health[1:]
	return a.h, a.err
}

// TestAdvanceHealthGating drives tasks with scripted health answers: a
// task is held at STARTING ("starting") until healthy, RUNNING only once
// healthy, stopped and FAILED when unhealthy (starting or running), and
// unaffected when it has no check.
func TestAdvanceHealthGating(t *testing.T) {
	unhealthy := fmt.Errorf("%w: health check exited with code 1: 503", ErrUnhealthy)
	temp := fmt.Errorf("%w: runtime unreachable", ErrTemporary)
	type step struct {
		want       api.TaskState // 0: an error, wantErr
		wantHealth string
		wantErr    error
		errText    string
	}
	tests := []struct {
		name      string
		ctlr      healthScript
		steps     []step
		wantCalls []string
	}{
		{
			name: "healthy then unhealthy while running",
			ctlr: healthScript{
				script: script{wait: unhealthy},
				health: []healthAnswer{{HealthStarting, nil}, {HealthHealthy, nil}},
			},
			steps: []step{
				{want: sStarting, wantHealth: HealthStarting},
				{want: sRunning, wantHealth: HealthHealthy},
				{want: sFailed, wantHealth: HealthUnhealthy, errText: "container unhealthy: health check exited with code 1: 503"},
			},
			wantCalls: []string{"start", "health()", "start", "health(starting)", "wait", "shutdown"},
		},
		{
			name:      "no health check runs at once",
			ctlr:      healthScript{health: []healthAnswer{{HealthNone, nil}}},
			steps:     []step{{want: sRunning, wantHealth: HealthNone}, {want: sComplete, wantHealth: HealthNone}},
			wantCalls: []string{"start", "health()", "wait"},
		},
		{
			name: "unhealthy while starting",
			ctlr: healthScript{health: []healthAnswer{{HealthStarting, nil}, {HealthUnhealthy, unhealthy}}},
			steps: []step{
				{want: sStarting, wantHealth: HealthStarting},
				{want: sFailed, wantHealth: HealthUnhealthy, errText: "container unhealthy"},
			},
			wantCalls: []string{"start", "health()", "start", "health(starting)", "shutdown"},
		},
		{
			name: "unhealthy stop fails then is retried",
			ctlr: healthScript{
				script: script{shutdown: errors.New("boom"), terminate: errors.New("boom")},
				health: []healthAnswer{{HealthUnhealthy, unhealthy}},
			},
			steps:     []step{{wantErr: unhealthy, errText: "boom"}},
			wantCalls: []string{"start", "health()", "shutdown", "terminate"},
		},
		{
			name: "exits before healthy",
			ctlr: healthScript{
				script: script{exitCode: 2},
				health: []healthAnswer{{HealthStarting, nil}, {HealthStarting, fmt.Errorf("%w: t1", ErrTaskExited)}},
			},
			steps: []step{
				{want: sStarting, wantHealth: HealthStarting},
				{want: sFailed, wantHealth: HealthStarting, errText: "exit code 2"},
			},
			wantCalls: []string{"start", "health()", "start", "health(starting)", "wait"},
		},
		{
			name:      "health check unreachable is retried",
			ctlr:      healthScript{health: []healthAnswer{{"", temp}}},
			steps:     []step{{wantErr: ErrTemporary}},
			wantCalls: []string{"start", "health()"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.ctlr
			task := &api.Task{Id: "t1", DesiredState: sRunning}
			st := &api.TaskStatus{State: sStarting}
			for i, s := range tc.steps {
				next, err := Advance(context.Background(), task, st, &c)
				if s.wantErr != nil {
					if next != nil || err == nil || !strings.Contains(err.Error(), s.errText) {
						t.Fatalf("step %d: Advance = %v, %v; want no status and an error with %q", i, next, err, s.errText)
					}
					if !errors.Is(err, ErrTemporary) && errors.Is(s.wantErr, ErrTemporary) {
						t.Fatalf("step %d: error %v does not wrap ErrTemporary", i, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: Advance: %v", i, err)
				}
				if next.State != s.want || next.Health != s.wantHealth {
					t.Fatalf("step %d: state %v health %q, want %v %q", i, next.State, next.Health, s.want, s.wantHealth)
				}
				if !strings.Contains(next.Err, s.errText) || (s.errText == "" && next.Err != "") {
					t.Fatalf("step %d: Err %q, want %q", i, next.Err, s.errText)
				}
				st = next
			}
			if !slices.Equal(c.calls, tc.wantCalls) {
				t.Errorf("controller calls %v, want %v", c.calls, tc.wantCalls)
			}
		})
	}
}
