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
