package main

import (
	"strings"
	"testing"
	"time"
)

func TestClusterUpdate(t *testing.T) {
	f := newFake()
	host := startFake(t, f)
	out, _, err := runCLI("--host", host, "cluster", "update", "--heartbeat-period", "2s", "--heartbeat-grace", "4")
	if err != nil || !strings.Contains(out, "Cluster updated") {
		t.Fatalf("cluster update: %v %s", err, out)
	}
	spec := f.lastClusterUpdate.GetSpec()
	if spec.GetHeartbeatPeriod() != int64(2*time.Second) || spec.GetHeartbeatGracePeriods() != 4 || spec.TaskHistoryRetentionLimit != nil {
		t.Fatalf("spec sent: %v", spec)
	}
	if f.lastClusterUpdate.GetVersion() != f.info.GetCluster().GetMeta().GetVersion() {
		t.Fatalf("version sent %d, read %d", f.lastClusterUpdate.GetVersion(), f.info.GetCluster().GetMeta().GetVersion())
	}
}

func TestClusterUpdateBadFlagsSendNothing(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "nothing to change"},
		{[]string{"--heartbeat-grace", "0"}, "--heartbeat-grace"},
		{[]string{"--heartbeat-period", "soon"}, "--heartbeat-period"},
		{[]string{"--heartbeat-period", "0s"}, "more than zero"},
		{[]string{"--task-history-limit", "-1"}, "--task-history-limit"},
	} {
		f := newFake()
		host := startFake(t, f)
		_, _, err := runCLI(append([]string{"--host", host, "cluster", "update"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%v: err %v, want it to mention %q", tc.args, err, tc.want)
		}
		if calls := f.callNames(); calls != "" {
			t.Fatalf("%v: sent %s", tc.args, calls)
		}
	}
}
