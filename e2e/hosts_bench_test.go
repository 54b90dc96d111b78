package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoalhq/shoal/deploy/lab"
)

// BenchmarkHostMemory runs 10 tasks on each of 3 hosts and reports the
// resident memory per host of the shoal daemon, of containerd, and of
// the containers' shims (MB, averaged over the hosts).
//
//	go test -run '^$' -bench HostMemory -benchtime 1x ./e2e/
func BenchmarkHostMemory(b *testing.B) {
	for i := 0; i < b.N; i++ {
		c := newCluster(b, 3, 1)
		svc := c.createService("web", "web:v1", 30)
		counts := c.perHost(c.waitRunning(svc.GetId(), 30, 2*time.Minute))
		// Let the daemons settle after the burst of starts.
		time.Sleep(2 * time.Second)
		var daemon, ctrd, shims float64
		for _, h := range c.Hosts {
			if counts[h.Name] != 10 {
				b.Fatalf("%s runs %d tasks, want 10: %v", h.Name, counts[h.Name], counts)
			}
			daemon += rssMB(h.DaemonPID())
			ctrd += rssMB(h.ContainerdPID())
			for _, pid := range shimPIDs(h) {
				shims += rssMB(pid)
			}
		}
		n := float64(len(c.Hosts))
		b.ReportMetric(daemon/n, "daemon-MB")
		b.ReportMetric(ctrd/n, "containerd-MB")
		b.ReportMetric(shims/n, "shims-MB")
		b.ReportMetric((daemon+ctrd)/n, "host-MB")
	}
}

// rssMB returns a process's resident set size in MB (0 if gone).
func rssMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// shimPIDs returns the PIDs of the host's containerd shims.
func shimPIDs(h *lab.Host) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if strings.Contains(string(b), "containerd-shim") && strings.Contains(string(b), "\x00"+h.NetNS+"\x00") {
			pids = append(pids, pid)
		}
	}
	return pids
}
