package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoalhq/shoal/deploy/lab"
)

// TestPlayground runs the README's first command's `shoal playground`
// part on three hosts: once `up` returns, `service ls --format json`
// through the printed SHOAL_HOST shows web with all replicas running;
// `up` again keeps it; `status` lists the hosts; `down` removes it all.
func TestPlayground(t *testing.T) {
	b := make([]byte, 3)
	rand.Read(b)
	name := labPrefix + "pg" + hex.EncodeToString(b)
	dir := filepath.Join(labBase, name)
	tools := os.Getenv("SHOAL_TOOLS_DIR")
	if tools == "" {
		tools = "/var/cache/shoal"
	}
	pg := []string{"--dir", dir, "--name", name}
	down := func() (string, error) {
		return runShoal(2*time.Minute, append([]string{"playground", "down"}, pg...)...)
	}
	t.Cleanup(func() {
		if t.Failed() && os.Getenv(keepEnv) == "1" {
			t.Logf("%s=1: playground kept in %s", keepEnv, dir)
			return
		}
		if out, err := down(); err != nil {
			t.Errorf("playground down: %v\n%s", err, out)
		}
	})

	up := append([]string{"playground", "up", "--hosts", "3", "--managers", "1", "--tools-dir", tools,
		"--owner-pid", strconv.Itoa(os.Getpid())}, pg...)
	start := time.Now()
	out, err := runShoal(5*time.Minute, up...)
	if err != nil {
		t.Fatalf("playground up: %v\n%s", err, out)
	}
	t.Logf("playground up (3 hosts) took %s:\n%s", time.Since(start).Round(10*time.Millisecond), out)
	m := regexp.MustCompile(`export SHOAL_HOST=(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("up printed no SHOAL_HOST:\n%s", out)
	}
	host := m[1]

	ls, err := runShoal(10*time.Second, "--host", host, "service", "ls", "--format", "json")
	if err != nil {
		t.Fatalf("service ls: %v\n%s", err, ls)
	}
	replicas := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(ls), "\n") {
		var row struct{ Name, Replicas string }
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("service ls line %q: %v", line, err)
		}
		replicas[row.Name] = row.Replicas
	}
	if replicas["web"] != "6/6" || replicas["client"] != "1/1" {
		t.Fatalf("service ls --format json = %q, want web 6/6 and client 1/1", ls)
	}
	// The client calls web by name over the demo network, every 5 s.
	poll(t, 30*time.Second, "client reaches web by name", func() error {
		out, err := runShoal(10*time.Second, "--host", host, "service", "logs", "client")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if !strings.Contains(out, `"ok":12,"failed":0`) {
			return fmt.Errorf("no full batch yet: %q", out)
		}
		return nil
	})

	// web is published on 8080 of every host.
	play, err := lab.Open(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	hc := play.HTTPClient(2 * time.Second)
	for _, h := range play.Hosts {
		if _, err := getEcho(hc, "http://"+h.Addr+":8080/"); err != nil {
			t.Fatalf("web on %s:8080: %v", h.Name, err)
		}
	}

	again, err := runShoal(time.Minute, up...)
	if err != nil || !strings.Contains(again, "already up") {
		t.Fatalf("second up: %v\n%s", err, again)
	}
	status, err := runShoal(10*time.Second, append([]string{"playground", "status"}, pg...)...)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, status)
	}
	for _, h := range []string{"h1", "h2", "h3"} {
		if !regexp.MustCompile(`(?m)^` + h + `\s+\S+\s+` + name + `-` + h + `\s+172\.29\.0\.\d+:4242\s+unix://\S+\s+running`).MatchString(status) {
			t.Errorf("status lacks a running %s:\n%s", h, status)
		}
	}

	if out, err := down(); err != nil || !strings.Contains(out, "Playground removed") {
		t.Fatalf("down: %v\n%s", err, out)
	}
	for _, ns := range []string{name + "-h1", name + "-ul"} {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
			t.Errorf("namespace %s left after down", ns)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("folder %s left after down (%v)", dir, err)
	}
	if out, err := runShoal(10*time.Second, append([]string{"playground", "status"}, pg...)...); err == nil {
		t.Errorf("status after down succeeded:\n%s", out)
	}
}
