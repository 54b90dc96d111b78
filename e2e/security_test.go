package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/manager"
	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/proto/api"
)

// certRole polls for the role in the node's certificate file.
func (d *daemon) certRole(want ca.Role) func() error {
	return func() error {
		b, err := os.ReadFile(filepath.Join(d.dir, "certificates", ca.NodeCertFile))
		if err != nil {
			return err
		}
		certs, err := ca.ParseCertificates(b)
		if err != nil {
			return err
		}
		id, err := ca.IdentityOf(certs[0])
		if err != nil {
			return err
		}
		if id.Role != want {
			return fmt.Errorf("certificate of %s says %s", id.ID, id.Role)
		}
		return nil
	}
}

// The API over TCP: refused in plaintext and without a certificate (with
// how to get one), served to an admin client certificate made with
// `cluster ca issue-client`; node files are private.
func TestAPIOverTCP(t *testing.T) {
	m := newDaemon(t, "m1")
	m.start("--init")

	out, err := runShoal(20*time.Second, "--host", m.addr, "service", "ls")
	if err == nil || !strings.Contains(out, "issue-client") {
		t.Fatalf("no certificate: %v\n%s", err, out)
	}
	// A plaintext gRPC client gets no answer at all.
	conn, err := grpc.NewClient(m.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := ctxT(5 * time.Second)
	defer cancel()
	if _, err := api.NewControlClient(conn).GetClusterInfo(ctx, &api.GetClusterInfoRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext call: %v, want Unavailable", err)
	}
	if out, err := m.tcpCLI("service", "create", "--name", "web", "--replicas", "2", "-d", "registry.test:5000/web:v1"); err != nil {
		t.Fatalf("service create over TCP: %v\n%s", err, out)
	}
	if out, err := m.tcpCLI("service", "ls"); err != nil || !strings.Contains(out, "web") {
		t.Fatalf("service ls over TCP: %v\n%s", err, out)
	}
	if out, err := m.tcpCLI("cluster", "leave"); err == nil || !strings.Contains(out, "unix socket") {
		t.Fatalf("leave over TCP: %v\n%s", err, out)
	}
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{
		{filepath.Join(m.dir, "certificates", ca.NodeKeyFile), 0o600},
		{filepath.Join(m.dir, "certificates", "gossip.keys"), 0o600},
		{filepath.Join(m.dir, "admin-certs", ca.ClientKeyFile), 0o600},
		{filepath.Join(m.dir, "shoal.sock"), 0o600},
	} {
		st, err := os.Stat(f.path)
		if err != nil {
			t.Errorf("%s: %v", f.path, err)
		} else if st.Mode().Perm() != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, st.Mode().Perm(), f.mode)
		}
	}
}

// serialOf reads the serial number of the node's certificate file.
func (d *daemon) serialOf(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.dir, "certificates", ca.NodeCertFile))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := ca.ParseCertificates(b)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0].SerialNumber.String()
}

// Certificates with a one-hour lifetime, renewed every second (the
// renewal schedule is overridden so the test need not wait half an hour),
// while an admin client opens a new TLS connection for every call and the
// agents heartbeat: no call fails, every node renews many times, and the
// nodes and tasks carry on.
func TestCertificateRenewalUnderLoad(t *testing.T) {
	m, w1, w2 := newDaemon(t, "m1"), newDaemon(t, "w1"), newDaemon(t, "w2")
	renew := []string{"--cert-renew-interval", "1s"}
	m.start(append([]string{"--init", "--cert-expiry", "1h"}, renew...)...)
	tok, err := m.cli("cluster", "join-token", "-q", "worker")
	if err != nil {
		t.Fatalf("join-token: %v\n%s", err, tok)
	}
	for _, w := range []*daemon{w1, w2} {
		w.start(append([]string{"--join", m.addr, "--token", strings.TrimSpace(tok)}, renew...)...)
	}
	if out, err := m.cli("service", "create", "--name", "web", "--replicas", "4", "registry.test:5000/web:v1"); err != nil {
		t.Fatalf("service create: %v\n%s", err, out)
	}
	before := map[*daemon]string{m: m.serialOf(t), w1: w1.serialOf(t), w2: w2.serialOf(t)}
	tasksBefore, err := m.cli("service", "ps", "-q", "web")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := m.tcpCLI("cluster", "info"); err != nil { // issues the admin certificate
		t.Fatalf("cluster info over TCP: %v\n%s", err, out)
	}
	certs := filepath.Join(m.dir, "admin-certs")
	admin, err := ca.ReadFiles(filepath.Join(certs, ca.ClientCertFile), filepath.Join(certs, ca.ClientKeyFile), filepath.Join(certs, ca.ClientCAFile))
	if err != nil {
		t.Fatal(err)
	}
	dial := manager.Dialer(admin, ca.ExpectManager)
	var sent, failed int
	var firstErr error
	stop := time.Now().Add(8 * time.Second)
	for time.Now().Before(stop) {
		sent++
		conn, err := dial(m.addr)
		if err == nil {
			ctx, cancel := ctxT(5 * time.Second)
			_, err = api.NewControlClient(conn).ListNodes(ctx, &api.ListNodesRequest{})
			cancel()
			conn.Close()
		}
		if err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	t.Logf("certificate renewal under load: sent=%d failed=%d", sent, failed)
	if failed > 0 {
		t.Fatalf("%d of %d calls failed while certificates renewed, first: %v", failed, sent, firstErr)
	}
	for d, serial := range before {
		if d.serialOf(t) == serial {
			t.Errorf("%s did not renew its certificate", d.name)
		}
		b, _ := os.ReadFile(d.logPath)
		if n := strings.Count(string(b), "certificate renewed"); n < 3 {
			t.Errorf("%s renewed %d times in 8s, want several", d.name, n)
		}
		if strings.Contains(string(b), "certificate renewal failed") {
			t.Errorf("%s: a renewal failed:\n%s", d.name, lastLines(string(b), 20))
		}
	}
	out, err := m.cli("node", "ls")
	if err != nil || strings.Count(out, "Ready") != 3 {
		t.Fatalf("nodes after renewals: %v\n%s", err, out)
	}
	if after, err := m.cli("service", "ps", "-q", "web"); err != nil || after != tasksBefore {
		t.Fatalf("tasks changed while certificates renewed: %v\nbefore:\n%s\nafter:\n%s", err, tasksBefore, after)
	}
}
