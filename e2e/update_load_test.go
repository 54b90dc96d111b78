package e2e

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// TestRollingUpdateUnderLoad updates web (6 replicas over 3 hosts, with
// a health check) from v1 to v2, 2 at a time, in each order, while a
// client container sends requests through the VIP as fast as they are
// answered: not one fails, and the answers move from v1 to v2.
func TestRollingUpdateUnderLoad(t *testing.T) {
	for _, order := range []string{"start-first", "stop-first"} {
		t.Run(order, func(t *testing.T) {
			c := newCluster(t, 3, 1)
			if out, err := c.Host(1).CLI(t.Context(), "network", "create", "app"); err != nil {
				t.Fatal(out, err)
			}
			app := c.network("app")
			o := api.UpdateConfig_ORDER_STOP_FIRST
			if order == "start-first" {
				o = api.UpdateConfig_ORDER_START_FIRST
			}
			ctx, cancel := ctxT(10 * time.Second)
			defer cancel()
			resp, err := c.control().CreateService(ctx, &api.CreateServiceRequest{Spec: &api.ServiceSpec{
				Annotations: &api.Annotations{Name: "web"},
				Task: &api.TaskSpec{
					// Healthy means listening: a task enters the VIP only then.
					Container: &api.ContainerSpec{Image: c.ref("web:v1"), Healthcheck: &api.HealthConfig{
						Test: []string{"CMD", "/bin/echo", "probe"}, Interval: proto.Int64(int64(200 * time.Millisecond)), Retries: proto.Uint32(3)}},
					Networks: []*api.NetworkAttachmentConfig{{Target: "app"}},
				},
				Mode:   &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 6}}},
				Update: &api.UpdateConfig{Parallelism: proto.Uint64(2), Order: o, Monitor: proto.Int64(int64(time.Second))},
			}})
			if err != nil {
				t.Fatal(err)
			}
			web := resp.GetService()
			c.waitRunning(web.GetId(), 6, 90*time.Second)
			client := c.createOn("client", "web:v1", 1, []string{"app"}, 0, "node.hostname==h1")
			clientNS := taskNetNS(c.Host(1), only(t, c.waitRunning(client.GetId(), 1, 60*time.Second)).GetId())
			vip := vipOf(c.service(web.GetId()), app.GetId())
			poll(t, 10*time.Second, "the VIP answers", func() error {
				_, err := getEcho(httpClientIn(clientNS, time.Second), "http://"+vip+"/")
				return err
			})

			l := startLoad(clientNS, "http://"+vip+"/", 4)
			time.Sleep(time.Second)
			start := time.Now()
			out, err := c.Host(1).CLI(t.Context(), "service", "update", "--image", c.ref("web:v2"), "web")
			took := time.Since(start)
			time.Sleep(time.Second)
			l.end()
			if err != nil {
				t.Fatalf("service update: %v\n%s", err, out)
			}
			t.Logf("rolling-update scenario=%s %s duration=%s", order, l.summary(), took.Round(time.Millisecond))
			if l.failed.Load() != 0 || l.sent.Load() < 500 {
				t.Fatalf("update under load: %s", l.summary())
			}
			l.mu.Lock()
			v1, v2 := l.answered["v1"], l.answered["v2"]
			l.mu.Unlock()
			if v1 == 0 || v2 == 0 {
				t.Fatalf("answers did not move from v1 to v2: %s", l.summary())
			}
			final := c.waitRunning(web.GetId(), 6, 30*time.Second)
			for _, tk := range final {
				if !strings.HasSuffix(tk.GetSpec().GetContainer().GetImage(), "web:v2") {
					t.Fatalf("task %s still runs %s", tk.GetId(), tk.GetSpec().GetContainer().GetImage())
				}
			}
			if st := c.service(web.GetId()).GetUpdateStatus(); st.GetState() != api.UpdateStatus_STATE_COMPLETED {
				t.Fatalf("update status %v", st)
			}
		})
	}
}
