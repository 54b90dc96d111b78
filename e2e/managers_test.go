package e2e

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/proto/api"
)

// leaderOf asks d who leads, as d sees it.
func leaderOf(d *daemon) (string, error) {
	ctx, cancel := ctxT(2 * time.Second)
	defer cancel()
	info, err := d.control().GetClusterInfo(ctx, &api.GetClusterInfoRequest{})
	if err != nil {
		return "", err
	}
	for _, m := range info.Members {
		if m.Leader {
			return m.NodeId, nil
		}
	}
	return "", fmt.Errorf("no leader among %d members", len(info.Members))
}

func serviceNames(d *daemon) ([]string, error) {
	ctx, cancel := ctxT(5 * time.Second)
	defer cancel()
	resp, err := d.control().ListServices(ctx, &api.ListServicesRequest{})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range resp.Services {
		names = append(names, s.Spec.Annotations.Name)
	}
	sort.Strings(names)
	return names, nil
}

func createService(d *daemon, name string) error {
	ctx, cancel := ctxT(10 * time.Second)
	defer cancel()
	_, err := d.control().CreateService(ctx, &api.CreateServiceRequest{Spec: svcSpec(name)})
	return err
}

func requireServiceSet(t *testing.T, d *daemon, want []string) {
	t.Helper()
	got, err := serviceNames(d)
	if err != nil {
		t.Fatalf("list services on %s: %v", d.name, err)
	}
	have := map[string]bool{}
	for _, n := range got {
		have[n] = true
	}
	for _, n := range want {
		if !have[n] {
			t.Fatalf("acknowledged service %s missing on %s (has %v)", n, d.name, got)
		}
	}
}

// inSync waits until every daemon reports the same store hash at the same
// applied index.
func inSync(t *testing.T, ds []*daemon) {
	t.Helper()
	poll(t, 15*time.Second, "managers in sync", func() error {
		var first *api.GetClusterInfoResponse
		for _, d := range ds {
			ctx, cancel := ctxT(3 * time.Second)
			info, err := d.control().GetClusterInfo(ctx, &api.GetClusterInfoRequest{})
			cancel()
			if err != nil {
				return err
			}
			if first == nil {
				first = info
				continue
			}
			if info.AppliedIndex != first.AppliedIndex || info.StoreHash != first.StoreHash {
				return fmt.Errorf("%s at %d/%s, first at %d/%s", d.name, info.AppliedIndex, info.StoreHash, first.AppliedIndex, first.StoreHash)
			}
		}
		return nil
	})
}

func TestThreeManagerDaemons(t *testing.T) {
	m := []*daemon{newDaemon(t, "m1"), newDaemon(t, "m2"), newDaemon(t, "m3")}
	m[0].start("--init")
	ctx, cancel := ctxT(10 * time.Second)
	info, err := m[0].control().GetClusterInfo(ctx, &api.GetClusterInfoRequest{})
	cancel()
	if err != nil {
		t.Fatalf("cluster info: %v", err)
	}
	token := info.Cluster.JoinTokens.Manager
	m[1].start("--join", m[0].addr, "--token", token)
	m[2].start("--join", m[0].addr, "--token", token)
	poll(t, 20*time.Second, "three reachable managers", func() error {
		out, err := m[0].cli("node", "ls")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if n := strings.Count(out, "Reachable") + strings.Count(out, "Leader"); n != 3 {
			return fmt.Errorf("node ls shows %d managers:\n%s", n, out)
		}
		return nil
	})

	// Acknowledged writes through every manager.
	var acked []string
	for i := 0; i < 9; i++ {
		name := fmt.Sprintf("svc-%d", i)
		if err := createService(m[i%3], name); err != nil {
			t.Fatalf("create %s via %s: %v", name, m[i%3].name, err)
		}
		acked = append(acked, name)
	}
	// A duplicate name is refused with AlreadyExists and writes nothing.
	if err := createService(m[1], "svc-0"); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("duplicate service name: got %v, want AlreadyExists", err)
	}

	t.Run("leader killed", func(t *testing.T) {
		old, err := leaderOf(m[0])
		if err != nil {
			t.Fatal(err)
		}
		var victim *daemon
		var rest []*daemon
		for _, d := range m {
			ctx, cancel := ctxT(2 * time.Second)
			info, _ := d.control().GetClusterInfo(ctx, &api.GetClusterInfoRequest{})
			cancel()
			if info != nil && info.NodeId == old {
				victim = d
			} else {
				rest = append(rest, d)
			}
		}
		if victim == nil {
			t.Fatalf("no daemon answers as leader %s", old)
		}
		killed := time.Now()
		victim.kill()
		poll(t, 2*time.Second, "new leader after kill -9 of the leader", func() error {
			l, err := leaderOf(rest[0])
			if err != nil {
				return err
			}
			if l == old {
				return fmt.Errorf("still %s", l)
			}
			return nil
		})
		t.Logf("leader election after kill -9: %v", time.Since(killed))
		poll(t, 10*time.Second, "node ls shows the dead manager Unreachable", func() error {
			out, err := rest[0].cli("node", "ls")
			if err != nil || !strings.Contains(out, "Unreachable") || !strings.Contains(out, "Leader") {
				return fmt.Errorf("%v:\n%s", err, out)
			}
			return nil
		})
		for _, d := range rest {
			requireServiceSet(t, d, acked)
		}
		if err := createService(rest[1], "after-failover"); err != nil {
			t.Fatalf("write after failover: %v", err)
		}
		acked = append(acked, "after-failover")
		victim.start() // resumes from its data dir and catches up
		inSync(t, m)
		requireServiceSet(t, victim, acked)
	})

	t.Run("restart all", func(t *testing.T) {
		before, err := serviceNames(m[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range m {
			d.stop()
		}
		for _, d := range m {
			d.start()
		}
		inSync(t, m)
		for _, d := range m {
			got, err := serviceNames(d)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(before) {
				t.Fatalf("%s after restart: %v, before: %v", d.name, got, before)
			}
		}
	})

	t.Run("quorum lost then forced new cluster", func(t *testing.T) {
		survivor := m[2]
		m[0].stop()
		m[1].stop()
		start := time.Now()
		err := createService(survivor, "no-quorum")
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("write without quorum: got %v, want Unavailable", err)
		}
		t.Logf("write without quorum failed after %v: %v", time.Since(start), err)
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("write without quorum took %v to fail", took)
		}
		// Reads are served from local state, flagged stale.
		var hdr metadata.MD
		ctx, cancel := ctxT(10 * time.Second)
		_, err = survivor.control().ListServices(ctx, &api.ListServicesRequest{}, grpc.Header(&hdr))
		cancel()
		if err != nil {
			t.Fatalf("stale read: %v", err)
		}
		if len(hdr.Get("shoal-stale")) == 0 {
			t.Fatal("read without quorum not flagged stale")
		}
		out, _ := survivor.cli("service", "ls")
		if !strings.Contains(out, "WARNING") {
			t.Fatalf("service ls without quorum shows no warning:\n%s", out)
		}

		survivor.stop()
		survivor.start("--force-new-cluster")
		poll(t, 10*time.Second, "writable after --force-new-cluster", func() error {
			return createService(survivor, "after-recovery")
		})
		requireServiceSet(t, survivor, append(acked, "after-recovery"))
	})
}

func TestDaemonRefusesMisuse(t *testing.T) {
	d := newDaemon(t, "solo")
	d.start("--init")
	// A second daemon on the same data dir fails fast.
	out, err := runShoal(20*time.Second, "daemon", "--data-dir", d.dir, "--listen-addr", freePort(t))
	if err == nil || !strings.Contains(out, "in use by another shoal daemon") {
		t.Fatalf("second daemon on the same dir: err=%v\n%s", err, out)
	}
	d.stop()
	// --init on the data dir of an existing node resumes that node (a
	// service manager restarts the daemon with the flags that made it),
	// saying so.
	d.start("--init")
	if b, _ := os.ReadFile(d.logPath); !strings.Contains(string(b[d.logOffset:]), "resuming it and ignoring --init") {
		t.Fatalf("--init on a used dir: no warning in the log:\n%s", lastLines(string(b), 20))
	}
	if out, err := d.cli("cluster", "info"); err != nil {
		t.Fatalf("resumed node: %v\n%s", err, out)
	}
	// A token with the cluster's CA digest but a wrong secret is refused
	// with a clear message.
	tok, err := d.cli("cluster", "join-token", "-q", "worker")
	if err != nil {
		t.Fatalf("join-token: %v\n%s", err, tok)
	}
	tok = strings.TrimSpace(tok)
	wrongSecret := tok[:len(tok)-40] + strings.Repeat("a", 40)
	other := newDaemon(t, "intruder")
	out, err = runShoal(30*time.Second, "daemon", "--data-dir", other.dir, "--listen-addr", other.addr,
		"--join", d.addr, "--token", wrongSecret)
	if err == nil || !strings.Contains(out, "token is not valid") {
		t.Fatalf("join with a wrong token: err=%v\n%s", err, out)
	}
	// A token naming another CA: the node refuses the manager before it
	// sends anything.
	wrongCA := "SHOAL-1-" + strings.Repeat("b", 52) + tok[len("SHOAL-1-")+52:]
	out, err = runShoal(30*time.Second, "daemon", "--data-dir", other.dir, "--listen-addr", other.addr,
		"--join", d.addr, "--token", wrongCA)
	if err == nil || !strings.Contains(out, "does not match the join token") {
		t.Fatalf("join with another CA's digest: err=%v\n%s", err, out)
	}
}

func (d *daemon) localCLI(args ...string) (string, error) {
	return runShoal(30*time.Second, append([]string{"--host", "unix://" + d.dir + "/shoal.sock"}, args...)...)
}

func (d *daemon) waitExit(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-d.exited:
	case <-time.After(timeout):
		t.Fatalf("%s still running %s after leaving", d.name, timeout)
	}
}

func TestLeaveAndRemoveDeadManager(t *testing.T) {
	m1, m2, m3, w1 := newDaemon(t, "m1"), newDaemon(t, "m2"), newDaemon(t, "m3"), newDaemon(t, "w1")
	m1.start("--init")
	mtok, err := m1.cli("cluster", "join-token", "manager", "-q")
	if err != nil {
		t.Fatalf("join-token: %v %s", err, mtok)
	}
	wtok, _ := m1.cli("cluster", "join-token", "worker", "-q")
	m2.start("--join", m1.addr, "--token", strings.TrimSpace(mtok))
	m3.start("--join", m1.addr, "--token", strings.TrimSpace(mtok))
	w1.start("--join", m1.addr, "--token", strings.TrimSpace(wtok))
	nodeCount := func(want int) func() error {
		return func() error {
			out, err := m1.cli("node", "ls", "-q")
			if err != nil {
				return err
			}
			if n := len(strings.Fields(out)); n != want {
				return fmt.Errorf("%d nodes:\n%s", n, out)
			}
			return nil
		}
	}
	poll(t, 10*time.Second, "four nodes", nodeCount(4))

	// A worker leaves: its daemon stops and the node is gone.
	if out, err := w1.localCLI("cluster", "leave"); err != nil || !strings.Contains(out, "left the cluster") {
		t.Fatalf("worker leave: %v\n%s", err, out)
	}
	w1.waitExit(t, 10*time.Second)
	poll(t, 10*time.Second, "worker gone from node ls", nodeCount(3))

	// A dead manager is demoted (the leader removes it from Raft) and removed.
	m3.kill()
	if out, err := m1.cli("node", "demote", "m3"); err != nil {
		t.Fatalf("demote dead manager: %v\n%s", err, out)
	}
	poll(t, 15*time.Second, "dead manager out of raft", func() error {
		ctx, cancel := ctxT(3 * time.Second)
		defer cancel()
		info, err := m1.control().GetClusterInfo(ctx, &api.GetClusterInfoRequest{})
		if err != nil {
			return err
		}
		if len(info.Members) != 2 {
			return fmt.Errorf("%d managers", len(info.Members))
		}
		return nil
	})
	poll(t, 30*time.Second, "node rm of the dead manager", func() error {
		out, err := m1.cli("node", "rm", "m3")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	poll(t, 10*time.Second, "two nodes", nodeCount(2))

	// A manager leaves only with --force, and the cluster goes on.
	if out, err := m2.localCLI("cluster", "leave"); err == nil || !strings.Contains(out, "demote") {
		t.Fatalf("manager leave without --force: err=%v\n%s", err, out)
	}
	if out, err := m2.localCLI("cluster", "leave", "--force"); err != nil {
		t.Fatalf("manager leave --force: %v\n%s", err, out)
	}
	m2.waitExit(t, 10*time.Second)
	poll(t, 10*time.Second, "one node", nodeCount(1))
	if err := createService(m1, "still-writable"); err != nil {
		t.Fatalf("write after the other managers left: %v", err)
	}
}

func TestPromoteAndDemoteDaemon(t *testing.T) {
	m1, w1 := newDaemon(t, "m1"), newDaemon(t, "w1")
	m1.start("--init")
	wtok, err := m1.cli("cluster", "join-token", "worker", "-q")
	if err != nil {
		t.Fatal(err)
	}
	w1.start("--join", m1.addr, "--token", strings.TrimSpace(wtok))
	if out, err := w1.cli("node", "ls"); err == nil || !strings.Contains(out, "not a manager") {
		t.Fatalf("node ls on a worker: err=%v\n%s", err, out)
	}
	managers := func(want int) func() error {
		return func() error {
			ctx, cancel := ctxT(3 * time.Second)
			defer cancel()
			info, err := m1.control().GetClusterInfo(ctx, &api.GetClusterInfoRequest{})
			if err != nil {
				return err
			}
			if len(info.Members) != want {
				return fmt.Errorf("%d managers", len(info.Members))
			}
			return nil
		}
	}
	if out, err := m1.cli("node", "promote", "w1"); err != nil {
		t.Fatalf("promote: %v\n%s", err, out)
	}
	poll(t, 15*time.Second, "promoted worker in raft", managers(2))
	poll(t, 10*time.Second, "promoted node's certificate says manager", w1.certRole(ca.RoleManager))
	poll(t, 10*time.Second, "promoted node answers the API", func() error {
		out, err := w1.cli("node", "ls")
		if err != nil || !strings.Contains(out, "Reachable") {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	})
	if out, err := m1.cli("node", "demote", "w1"); err != nil {
		t.Fatalf("demote: %v\n%s", err, out)
	}
	poll(t, 15*time.Second, "demoted node out of raft", managers(1))
	poll(t, 15*time.Second, "demoted node's certificate says worker", w1.certRole(ca.RoleWorker))
	poll(t, 15*time.Second, "demoted node stops serving the manager API", func() error {
		out, err := w1.cli("node", "ls")
		if err == nil || !strings.Contains(out, "not a manager") {
			return fmt.Errorf("still a manager: %v\n%s", err, out)
		}
		return nil
	})
}

// A drained manager runs no tasks: a service lands on the workers only,
// and `service create` waits until it has converged.
func TestDrainedManagerRunsNoTasks(t *testing.T) {
	m1, w1, w2 := newDaemon(t, "m1"), newDaemon(t, "w1"), newDaemon(t, "w2")
	m1.start("--init", "--availability", "drain")
	wtok, err := m1.cli("cluster", "join-token", "worker", "-q")
	if err != nil {
		t.Fatal(err)
	}
	w1.start("--join", m1.addr, "--token", strings.TrimSpace(wtok))
	w2.start("--join", m1.addr, "--token", strings.TrimSpace(wtok))
	poll(t, 10*time.Second, "workers ready", func() error {
		out, err := m1.cli("node", "ls")
		if err != nil || strings.Count(out, "Ready") != 3 {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	})
	out, err := runShoal(60*time.Second, "--host", m1.sock(), "service", "create", "--name", "web", "--replicas", "4", "--wait-timeout", "50s", "registry.test:5000/web:v1")
	if err != nil || !strings.Contains(out, "converged") {
		t.Fatalf("service create: %v\n%s", err, out)
	}
	ps, err := m1.cli("service", "ps", "web")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ps, " m1 ") || strings.Count(ps, "Running") < 4 {
		t.Fatalf("tasks on the drained manager, or not running:\n%s", ps)
	}
	// Scale and drain a worker: everything moves to the other worker.
	if out, err := runShoal(60*time.Second, "--host", m1.sock(), "service", "scale", "web=6"); err != nil {
		t.Fatalf("scale: %v\n%s", err, out)
	}
	if out, err := m1.cli("node", "update", "--availability", "drain", "w1"); err != nil {
		t.Fatalf("drain w1: %v\n%s", err, out)
	}
	poll(t, 20*time.Second, "all tasks on w2", func() error {
		ctx, cancel := ctxT(3 * time.Second)
		defer cancel()
		resp, err := m1.control().ListTasks(ctx, &api.ListTasksRequest{})
		if err != nil {
			return err
		}
		nodes, err := m1.control().ListNodes(ctx, &api.ListNodesRequest{})
		if err != nil {
			return err
		}
		host := map[string]string{}
		for _, n := range nodes.Nodes {
			host[n.Id] = n.Description.Hostname
		}
		running := 0
		for _, tk := range resp.Tasks {
			if tk.Status.State == api.TaskState_TASK_STATE_RUNNING && tk.DesiredState == api.TaskState_TASK_STATE_RUNNING {
				if host[tk.NodeId] != "w2" {
					return fmt.Errorf("task %s runs on %s", tk.Id, host[tk.NodeId])
				}
				running++
			}
		}
		if running != 6 {
			return fmt.Errorf("%d running", running)
		}
		return nil
	})
}
