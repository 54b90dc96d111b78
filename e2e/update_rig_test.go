package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// minRequests is how many requests a load scenario sends at least: the
// load runs from a second before the change to a second after it, and
// longer when fewer were sent by then.
const minRequests = 10_000

// updateRig is a service web of web:v1 (6 replicas, or global), healthy
// once it listens, on the overlay network app, and a client container on
// one host calling web through its VIP.
type updateRig struct {
	c        *cluster
	web      *api.Service
	clientNS string
	url      string
}

// webHealth is web's health check: the echo server's own probe.
func webHealth() *api.HealthConfig {
	return &api.HealthConfig{Test: []string{"CMD", "/bin/echo", "probe"},
		Interval: proto.Int64(int64(200 * time.Millisecond)), Retries: proto.Uint32(3)}
}

// rigSpec says what newRig sets up.
type rigSpec struct {
	// mode and tasks: web's mode and how many tasks it runs (6
	// replicas when mode is nil).
	mode  *api.ServiceMode
	tasks int
	// update is web's update config.
	update *api.UpdateConfig
	// clientHost is the host of the client container.
	clientHost string
	// constraints place web.
	constraints []string
}

// newUpdateRig creates network app, web (6 replicas) with the update
// config on nodes matching constraints, and the client on clientHost,
// and waits until the client gets answers through web's VIP.
func newUpdateRig(t *testing.T, c *cluster, update *api.UpdateConfig, clientHost string, constraints ...string) *updateRig {
	t.Helper()
	return newRig(t, c, rigSpec{update: update, clientHost: clientHost, constraints: constraints})
}

// newRig sets up what s says, as newUpdateRig does.
func newRig(t *testing.T, c *cluster, s rigSpec) *updateRig {
	t.Helper()
	if s.mode == nil {
		s.mode, s.tasks = &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 6}}}, 6
	}
	if out, err := c.Host(1).CLI(t.Context(), "network", "create", "app"); err != nil {
		t.Fatal(out, err)
	}
	app := c.network("app")
	ctx, cancel := ctxT(10 * time.Second)
	defer cancel()
	resp, err := c.control().CreateService(ctx, &api.CreateServiceRequest{Spec: &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "web"},
		Task: &api.TaskSpec{
			// Healthy means listening: a task enters the VIP only then.
			Container: &api.ContainerSpec{Image: c.ref("web:v1"), Healthcheck: webHealth()},
			Networks:  []*api.NetworkAttachmentConfig{{Target: "app"}},
			Placement: &api.Placement{Constraints: s.constraints},
		},
		Mode:   s.mode,
		Update: s.update,
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := &updateRig{c: c, web: resp.GetService()}
	c.waitRunning(r.web.GetId(), s.tasks, 90*time.Second)
	client := c.createOn("client", "web:v1", 1, []string{"app"}, 0, "node.hostname=="+s.clientHost)
	r.clientNS = taskNetNS(c.hostNamed(s.clientHost), only(t, c.waitRunning(client.GetId(), 1, 60*time.Second)).GetId())
	r.url = "http://" + vipOf(c.service(r.web.GetId()), app.GetId()) + "/"
	poll(t, 10*time.Second, "the VIP answers", func() error {
		_, err := getEcho(httpClientIn(r.clientNS, time.Second), r.url)
		return err
	})
	return r
}

// loadRun is what underLoad saw.
type loadRun struct {
	*load
	took       time.Duration // the action's duration
	maxRunning int           // most web tasks RUNNING at once, meant to run or not
	minServing int           // fewest web tasks RUNNING and meant to run
}

// underLoad runs action while the client sends requests through web's
// VIP as fast as they are answered, and logs one line:
//
//	rolling-update scenario=NAME sent=N failed=M duration=D ...
//
// The load starts a second before the action and ends a second after
// it, or later, once minRequests were sent (a minute at most).
func (r *updateRig) underLoad(t *testing.T, scenario string, action func() error) (*loadRun, error) {
	t.Helper()
	l := startLoad(r.clientNS, r.url, 4)
	w := r.c.watchTasks(r.web.GetId())
	time.Sleep(time.Second) // load before the change
	start := time.Now()
	err := action()
	run := &loadRun{load: l, took: time.Since(start)}
	run.maxRunning, run.minServing = w.end()
	time.Sleep(time.Second) // and after it
	for deadline := time.Now().Add(time.Minute); l.sent.Load() < minRequests && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	l.end()
	t.Logf("rolling-update scenario=%s sent=%d failed=%d duration=%s max-running=%d min-serving=%d %s",
		scenario, l.sent.Load(), l.failed.Load(), run.took.Round(time.Millisecond), run.maxRunning, run.minServing, l.details())
	return run, err
}

// versions returns how many answers came from each version.
func (l *load) versions() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for v, n := range l.answered {
		out[v] = n
	}
	return out
}

// taskWatch lists a service's tasks every 100 ms and keeps the most
// that were RUNNING at once (meant to run or stopping) and the fewest
// RUNNING and meant to run.
type taskWatch struct {
	mu         sync.Mutex
	maxRunning int
	minServing int
	stop       chan struct{}
	done       chan struct{}
}

func (c *cluster) watchTasks(serviceID string) *taskWatch {
	w := &taskWatch{minServing: 1 << 30, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			ts, err := c.allTasks(serviceID)
			if err != nil {
				continue
			}
			running, serving := 0, 0
			for _, tk := range ts {
				if tk.GetStatus().GetState() == api.TaskState_TASK_STATE_RUNNING {
					running++
					if tk.GetDesiredState() == api.TaskState_TASK_STATE_RUNNING {
						serving++
					}
				}
			}
			w.mu.Lock()
			w.maxRunning, w.minServing = max(w.maxRunning, running), min(w.minServing, serving)
			w.mu.Unlock()
		}
	}()
	return w
}

// end stops the watch and returns what it saw.
func (w *taskWatch) end() (maxRunning, minServing int) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxRunning, w.minServing
}

// allTasks lists every task of the service, whatever its state.
func (c *cluster) allTasks(serviceID string) ([]*api.Task, error) {
	ctx, cancel := ctxT(3 * time.Second)
	defer cancel()
	cc, err := c.manager().Control()
	if err != nil {
		return nil, err
	}
	resp, err := cc.ListTasks(ctx, &api.ListTasksRequest{ServiceIds: []string{serviceID}})
	return resp.GetTasks(), err
}

// waitUpdateState waits until the service's update status has the state
// and returns the service.
func (c *cluster) waitUpdateState(serviceID string, want api.UpdateStatus_State, timeout time.Duration) *api.Service {
	c.t.Helper()
	var svc *api.Service
	poll(c.t, timeout, fmt.Sprintf("update state %v", want), func() error {
		svc = c.service(serviceID)
		if got := svc.GetUpdateStatus(); got.GetState() != want {
			return fmt.Errorf("update status %v", got)
		}
		return nil
	})
	return svc
}

// taskStart measures how long a single task of web's current spec takes
// from its creation to RUNNING (healthy), by the task's own timestamps:
// a one-replica copy of web named probe is created, timed and removed.
func (c *cluster) taskStart(t *testing.T, web *api.Service) time.Duration {
	t.Helper()
	spec := proto.Clone(web.GetSpec()).(*api.ServiceSpec)
	spec.Annotations = &api.Annotations{Name: "probe"}
	spec.Mode = &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 1}}}
	ctx, cancel := ctxT(10 * time.Second)
	defer cancel()
	resp, err := c.control().CreateService(ctx, &api.CreateServiceRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	tk := only(t, c.waitRunning(resp.GetService().GetId(), 1, 60*time.Second))
	took := time.Duration(tk.GetStatus().GetTimestamp() - tk.GetMeta().GetCreatedAt())
	ctx, cancel = ctxT(10 * time.Second)
	defer cancel()
	if _, err := c.control().RemoveService(ctx, &api.RemoveServiceRequest{ServiceId: resp.GetService().GetId()}); err != nil {
		t.Fatal(err)
	}
	return took
}

// failingUpdate updates web to image under load (see underLoad) with
// `shoal service update`, which must fail (the update pauses or rolls
// back); it returns the command's output and what the load saw.
func (r *updateRig) failingUpdate(t *testing.T, scenario, image string) (string, *loadRun) {
	t.Helper()
	var out string
	run, err := r.underLoad(t, scenario, func() error {
		var err error
		out, err = r.c.Host(1).CLI(t.Context(), "service", "update", "--wait-timeout", "2m", "--image", image, "web")
		if err == nil {
			return fmt.Errorf("service update succeeded, but the update should have paused or rolled back:\n%s", out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, run
}
