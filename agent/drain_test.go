package agent

import (
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/agent/runtime/simulated"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// recordingOverlay notes when each task's endpoints were published and
// withdrawn.
type recordingOverlay struct {
	mu        sync.Mutex
	published map[string]time.Time
	withdrawn map[string]time.Time
}

func (o *recordingOverlay) UpdateNetworks([]*api.Network, []string, bool) {}

func (o *recordingOverlay) Publish(t *api.Task) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.published[t.GetId()] = time.Now()
	return nil
}

func (o *recordingOverlay) Withdraw(id string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.withdrawn[id]; !ok {
		o.withdrawn[id] = time.Now()
	}
	return nil
}

func (o *recordingOverlay) times(id string) (pub, wd time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.published[id], o.withdrawn[id]
}

// A task stopped with a drain leaves discovery first and keeps running
// for its drain before the stop; one stopped without keeps running only
// for the endpoint settle.
func TestAgentDrainsBeforeStop(t *testing.T) {
	const drain, settle = 600 * time.Millisecond, 50 * time.Millisecond
	c := newCluster(t, 1)
	c.createNodes("n1")
	c.update(func(tx store.Tx) error {
		for _, id := range []string{"drained", "plain"} {
			tk := newTask(id, "n1", stRunning)
			tk.Networks = []*api.NetworkAttachment{{NetworkId: "net", Addresses: []string{"10.0.0.2/24"}}}
			if err := tx.CreateTask(tk); err != nil {
				return err
			}
		}
		return nil
	})
	exec := simulated.New(simulated.Config{})
	ov := &recordingOverlay{published: map[string]time.Time{}, withdrawn: map[string]time.Time{}}
	startAgent(t, Config{NodeID: "n1", Managers: c.addrs(), Executor: exec, StateDir: t.TempDir(), Overlay: ov, EndpointSettle: settle})
	c.waitStates(stRunning, "drained", "plain")
	poll(t, "endpoints published", func() error {
		for _, id := range []string{"drained", "plain"} {
			if p, _ := ov.times(id); p.IsZero() {
				return errors.New(id + " not published")
			}
		}
		return nil
	})

	c.update(func(tx store.Tx) error {
		for _, id := range []string{"drained", "plain"} {
			tk := proto.Clone(tx.GetTask(id)).(*api.Task)
			tk.DesiredState = stShutdown
			if id == "drained" {
				tk.Drain = int64(drain)
			}
			if err := tx.UpdateTask(tk); err != nil {
				return err
			}
		}
		return nil
	})
	stopped := map[string]time.Time{}
	deadline := time.Now().Add(failAfter)
	for len(stopped) < 2 && time.Now().Before(deadline) {
		for _, id := range []string{"drained", "plain"} {
			if _, ok := stopped[id]; !ok && !exec.IsRunning(id) {
				stopped[id] = time.Now()
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.waitStates(stShutdown, "drained", "plain")
	for id, want := range map[string]time.Duration{"drained": drain, "plain": settle} {
		_, wd := ov.times(id)
		if wd.IsZero() || stopped[id].IsZero() {
			t.Fatalf("%s: withdrawn at %v, stopped at %v", id, wd, stopped[id])
		}
		if held := stopped[id].Sub(wd); held < want {
			t.Errorf("%s kept running %v after leaving discovery, want at least %v", id, held, want)
		}
	}
	if held := stopped["plain"].Sub(stopped["drained"]); held > 0 {
		t.Errorf("the task without a drain stopped %v after the drained one", held)
	}
}
