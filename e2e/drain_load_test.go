package e2e

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// TestDrainUnderLoad drains a host while a client container sends
// requests through web's VIP as fast as they are answered: with
// start-first order, the drained host's tasks are replaced elsewhere
// first, leave every VIP before they stop, and finish the requests they
// hold. Not one request fails.
func TestDrainUnderLoad(t *testing.T) {
	c := newCluster(t, 3, 1)
	r := newUpdateRig(t, c, &api.UpdateConfig{Parallelism: proto.Uint64(2), Order: api.UpdateConfig_ORDER_START_FIRST}, "h1")
	tasks := c.waitRunning(r.web.GetId(), 6, 30*time.Second)
	if n := c.perHost(tasks)["h3"]; n == 0 {
		t.Fatalf("no web task on h3: %v", c.perHost(tasks))
	}
	run, err := r.underLoad(t, "drain-start-first", func() error {
		if out, err := c.Host(1).CLI(t.Context(), "node", "update", "--availability", "drain", "h3"); err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		poll(t, 60*time.Second, "h3 drained, 6 running elsewhere", func() error {
			ts, err := c.running(r.web.GetId())
			if err != nil {
				return err
			}
			if n := c.perHost(ts)["h3"]; n != 0 || len(ts) != 6 {
				return fmt.Errorf("%d running, %d on h3", len(ts), n)
			}
			return nil
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if run.failed.Load() != 0 || run.sent.Load() < minRequests {
		t.Fatalf("drain under load: %s", run.summary())
	}
	if run.maxRunning > 6+2 {
		t.Fatalf("the drain ran %d tasks at once, more than replicas + parallelism = 8", run.maxRunning)
	}
}
