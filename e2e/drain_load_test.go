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
	if out, err := c.Host(1).CLI(t.Context(), "network", "create", "app"); err != nil {
		t.Fatal(out, err)
	}
	app := c.network("app")
	ctx, cancel := ctxT(10 * time.Second)
	defer cancel()
	resp, err := c.control().CreateService(ctx, &api.CreateServiceRequest{Spec: &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "web"},
		Task: &api.TaskSpec{
			Container: &api.ContainerSpec{Image: c.ref("web:v1")},
			Networks:  []*api.NetworkAttachmentConfig{{Target: "app"}},
		},
		Mode:   &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 6}}},
		Update: &api.UpdateConfig{Parallelism: proto.Uint64(2), Order: api.UpdateConfig_ORDER_START_FIRST},
	}})
	if err != nil {
		t.Fatal(err)
	}
	web := resp.GetService()
	tasks := c.waitRunning(web.GetId(), 6, 90*time.Second)
	if n := c.perHost(tasks)["h3"]; n == 0 {
		t.Fatalf("no web task on h3: %v", c.perHost(tasks))
	}
	client := c.createOn("client", "web:v1", 1, []string{"app"}, 0, "node.hostname==h1")
	clientNS := taskNetNS(c.Host(1), only(t, c.waitRunning(client.GetId(), 1, 60*time.Second)).GetId())
	vip := vipOf(c.service(web.GetId()), app.GetId())
	poll(t, 10*time.Second, "the VIP answers", func() error { _, err := getEcho(httpClientIn(clientNS, time.Second), "http://"+vip+"/"); return err })

	l := startLoad(clientNS, "http://"+vip+"/", 4)
	time.Sleep(time.Second) // load before the drain
	start := time.Now()
	if out, err := c.Host(1).CLI(t.Context(), "node", "update", "--availability", "drain", "h3"); err != nil {
		l.end()
		t.Fatal(out, err)
	}
	poll(t, 60*time.Second, "h3 drained, 6 running elsewhere", func() error {
		ts, err := c.running(web.GetId())
		if err != nil {
			return err
		}
		if n := c.perHost(ts)["h3"]; n != 0 || len(ts) != 6 {
			return fmt.Errorf("%d running, %d on h3", len(ts), n)
		}
		return nil
	})
	moved := time.Since(start)
	time.Sleep(time.Second) // and after
	l.end()
	t.Logf("drain scenario=start-first %s moved-in=%s", l.summary(), moved.Round(time.Millisecond))
	if l.failed.Load() != 0 || l.sent.Load() < 200 {
		t.Fatalf("drain under load: %s", l.summary())
	}
}
