package images

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostBinaries compiles the programs for this host (linux) via the cache.
func hostBinaries(t *testing.T) map[string]string {
	t.Helper()
	bins, err := compile(context.Background(), DefaultCacheDir(), programNames, "built-in-v7")
	if err != nil {
		t.Fatal(err)
	}
	return bins
}

// lineWaiter reads a process's stdout and reports lines to waitFor.
type lineWaiter struct{ lines chan string }

func startProc(t *testing.T, bin string, env []string, args ...string) (*exec.Cmd, *lineWaiter) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lw := &lineWaiter{lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lw.lines <- sc.Text()
		}
		close(lw.lines)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, lw
}

func (lw *lineWaiter) waitFor(t *testing.T, substr string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-lw.lines:
			if !ok {
				t.Fatalf("output ended before %q", substr)
			}
			if strings.Contains(l, substr) {
				return
			}
		case <-timeout:
			t.Fatalf("no %q in output after 10s", substr)
		}
	}
}

// waitExit waits up to 10s for cmd and returns its exit code.
func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("process did not exit within 10s")
		return -1
	}
}

func getStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestEchoOnHost(t *testing.T) {
	bins := hostBinaries(t)
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	unhealthy := filepath.Join(t.TempDir(), "unhealthy")
	env := []string{"PORT=" + port, "SHOAL_TASK_ID=task-42", "VERSION=", "UNHEALTHY_FILE=" + unhealthy}
	cmd, out := startProc(t, bins["echo"], env)
	out.waitFor(t, "listening on")
	base := "http://" + addr

	if code := getStatus(base + "/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	resp, err := http.Get(base + "/any/path")
	if err != nil {
		t.Fatal(err)
	}
	var a map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	hostname, _ := os.Hostname()
	if a["hostname"] != hostname || a["task_id"] != "task-42" || a["version"] != "built-in-v7" ||
		!strings.HasPrefix(a["client"], "127.0.0.1:") || len(a) != 4 {
		t.Errorf("answer = %v", a)
	}

	// probe mode follows /healthz; the marker file makes it fail.
	probe := func() int {
		c := exec.Command(bins["echo"], "probe")
		c.Env = append(os.Environ(), "PORT="+port)
		err := c.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		return 0
	}
	if code := probe(); code != 0 {
		t.Errorf("probe while healthy exited %d", code)
	}
	if err := os.WriteFile(unhealthy, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := getStatus(base + "/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz with marker = %d", code)
	}
	if code := probe(); code != 1 {
		t.Errorf("probe while unhealthy exited %d", code)
	}
	os.Remove(unhealthy)

	// The client program against it.
	c := exec.Command(bins["client"], "-url", base+"/", "-n", "6", "-c", "2")
	b, err := c.Output()
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Sent, OK, Failed int
		Hostnames        map[string]int
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatalf("client output %q: %v", b, err)
	}
	if sum.Sent != 6 || sum.OK != 6 || sum.Failed != 0 || sum.Hostnames[hostname] != 6 {
		t.Errorf("client summary = %s", b)
	}

	// SIGTERM while a request is in flight: it completes, then exit 0.
	type result struct {
		status int
		body   string
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		resp, err := http.Get(base + "/slow?delay=700ms")
		if err != nil {
			inflight <- result{err: err}
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		inflight <- result{status: resp.StatusCode, body: string(body)}
	}()
	out.waitFor(t, "delaying /slow")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	out.waitFor(t, "draining")
	r := <-inflight
	if r.err != nil || r.status != 200 || !strings.Contains(r.body, `"task_id":"task-42"`) {
		t.Errorf("in-flight request during SIGTERM: %+v", r)
	}
	if code := waitExit(t, cmd); code != 0 {
		t.Errorf("echo exited %d after SIGTERM", code)
	}
	if code := getStatus(base + "/healthz"); code != 0 {
		t.Errorf("server still answers after exit: %d", code)
	}
}

func TestClientWithNoServer(t *testing.T) {
	bins := hostBinaries(t)
	addr, err := freeAddr() // closed: connections are refused
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(bins["client"])
	c.Env = append(os.Environ(), "URL=http://"+addr+"/", "COUNT=3", "TIMEOUT=1s")
	b, err := c.Output()
	if err != nil {
		t.Fatalf("client exited with %v", err)
	}
	var sum struct {
		Sent, OK, Failed int
		Errors           []string
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Sent != 3 || sum.Failed != 3 || len(sum.Errors) != 3 {
		t.Errorf("summary = %s", b)
	}
}

func TestExitAndSleeper(t *testing.T) {
	bins := hostBinaries(t)
	cmd, _ := startProc(t, bins["exit"], []string{"SLEEP=50ms", "CODE=3"})
	if code := waitExit(t, cmd); code != 3 {
		t.Errorf("exit CODE=3 exited %d", code)
	}
	cmd, _ = startProc(t, bins["exit"], []string{"SLEEP=", "CODE="})
	if code := waitExit(t, cmd); code != 0 {
		t.Errorf("exit with defaults exited %d", code)
	}
	cmd, out := startProc(t, bins["exit"], []string{"SLEEP=60", "CODE=0"})
	out.waitFor(t, "sleeping")
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd); code != 143 {
		t.Errorf("exit after SIGTERM exited %d, want 143", code)
	}

	cmd, out = startProc(t, bins["sleeper"], nil)
	out.waitFor(t, "running")
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd); code != 0 {
		t.Errorf("sleeper exited %d after SIGTERM", code)
	}
}
