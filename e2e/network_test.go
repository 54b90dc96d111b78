package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestNetworkCommands drives `shoal network` against a real daemon: the
// VNI and subnet are allocated at create, bad input is refused with a
// message that says what to change and creates nothing, and a network in
// use cannot be removed.
func TestNetworkCommands(t *testing.T) {
	d := newDaemon(t, "net")
	d.start("--init")
	mustCLI := func(args ...string) string {
		t.Helper()
		out, err := d.cli(args...)
		if err != nil {
			t.Fatalf("shoal %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	mustCLI("network", "create", "app")
	mustCLI("network", "create", "--subnet", "10.77.0.0/16", "--label", "team=db", "data")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"network", "create", "--subnet", "10.77.5.0/24", "clash"}, "overlaps 10.77.0.0/16 of network data"},
		{[]string{"network", "create", "app"}, `network name "app" is already in use`},
		{[]string{"network", "create", "--subnet", "10.1.2.3/24", "hostbits"}, "write 10.1.2.0/24"},
		{[]string{"network", "create", "--driver", "bridge", "br"}, "predefined on every node"},
	} {
		out, err := d.cli(tc.args...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("shoal %s: err=%v, want an error containing %q:\n%s", strings.Join(tc.args, " "), err, tc.want, out)
		}
	}
	ls := mustCLI("network", "ls", "--format", "json")
	var rows []struct {
		Name, Driver, Subnet string
		VNI                  uint32
	}
	for _, line := range strings.Split(strings.TrimSpace(ls), "\n") {
		var r struct {
			Name, Driver, Subnet string
			VNI                  uint32
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("network ls line %q: %v", line, err)
		}
		if r.Name == "ingress" { // the routing mesh, made by the cluster
			continue
		}
		rows = append(rows, r)
	}
	if len(rows) != 2 || rows[0].Name != "app" || !strings.HasPrefix(rows[0].Subnet, "10.0.") || !strings.HasSuffix(rows[0].Subnet, ".0/24") || rows[0].Driver != "overlay" ||
		rows[1].Name != "data" || rows[1].Subnet != "10.77.0.0/16" || rows[0].VNI == rows[1].VNI || rows[0].VNI < 4096 {
		t.Fatalf("network ls: %+v", rows)
	}
	if out := mustCLI("network", "inspect", "data"); !strings.Contains(out, `"team": "db"`) || !strings.Contains(out, `"gateway": "10.77.0.1"`) {
		t.Fatalf("inspect:\n%s", out)
	}

	mustCLI("service", "create", "-d", "--name", "web", "--network", "app", "-p", "8080:80", "registry.test:5000/web:v1")
	mustCLI("network", "create", "--subnet", "10.99.0.0/29", "tiny")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"service", "create", "-d", "--name", "big", "--replicas", "6", "--network", "tiny", "registry.test:5000/web:v1"},
			"network tiny (10.99.0.0/29) has 5 free addresses; the service needs 6 replicas and its virtual IP"},
		{[]string{"service", "create", "-d", "--name", "web2", "-p", "8080:81", "registry.test:5000/web:v1"},
			"published port 8080/tcp is already published by service web"},
		{[]string{"service", "create", "-d", "--name", "lost", "--network", "nosuch", "registry.test:5000/web:v1"},
			"network nosuch not found"},
	} {
		out, err := d.cli(tc.args...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("shoal %s: err=%v, want an error containing %q:\n%s", strings.Join(tc.args, " "), err, tc.want, out)
		}
	}
	if out := mustCLI("service", "ls", "-q"); strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("refused creates left services behind:\n%s", out)
	}
	if out, err := d.cli("network", "rm", "app"); err == nil || !strings.Contains(out, "in use by service web") {
		t.Fatalf("rm of a used network: %v\n%s", err, out)
	}
	mustCLI("service", "rm", "web")
	// The service's tasks hold addresses on app until they are dead.
	poll(t, 20*time.Second, "network rm app", func() error {
		if out, err := d.cli("network", "rm", "app"); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	mustCLI("network", "rm", "data", "tiny")
	if out := mustCLI("network", "ls", "--format", "json"); strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, `"Name":"ingress"`) {
		t.Fatalf("want only the ingress network left: %q", out)
	}
	if out, err := d.cli("network", "rm", "ingress"); err != nil {
		t.Logf("ingress network removable when unused: %v %s", err, out)
	}
}

// TestAddressPoolSetAtInit: --default-addr-pool and its mask length,
// given with --init, decide where networks without a subnet get theirs;
// given without --init they are refused.
func TestAddressPoolSetAtInit(t *testing.T) {
	d := newDaemon(t, "pool")
	out, err := runShoal(20*time.Second, "daemon", "--data-dir", d.dir, "--listen-addr", d.addr, "--runtime", "simulated",
		"--join", "127.0.0.1:1", "--token", "SHOAL-1-"+strings.Repeat("a", 52)+"-"+strings.Repeat("a", 40), "--default-addr-pool", "10.200.0.0/16")
	if err == nil || !strings.Contains(out, "give them with --init only") {
		t.Fatalf("pool without --init: %v\n%s", err, out)
	}
	d.start("--init", "--default-addr-pool", "10.200.0.0/16", "--default-addr-pool-mask-length", "26")
	if out, err := d.cli("network", "create", "app"); err != nil {
		t.Fatal(out, err)
	}
	poll(t, 10*time.Second, "app and ingress carved from the pool", func() error {
		out, err := d.cli("network", "ls", "--format", "json")
		if err != nil {
			return err
		}
		for _, want := range []string{`"Name":"app"`, `"Name":"ingress"`} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("no %s in %s", want, out)
			}
		}
		if strings.Count(out, `"Subnet":"10.200.0.`) != 2 || !strings.Contains(out, "/26") {
			return fmt.Errorf("subnets not /26 of 10.200.0.0/16: %s", out)
		}
		return nil
	})
}
