package containerd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoalhq/shoal/proto/api"
)

// readRecords parses a log file.
func readRecords(t *testing.T, path string) []logRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []logRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r logRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: bad record %q: %v", path, sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// Lines become timestamped JSON records, split across writes, cut when
// too long, and a partial line is written on Close; the file rotates at
// its limit, keeping one old file.
func TestLineWriterAndRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "t.log")
	f, err := openRotating(path, 400)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	now := func() time.Time { n++; return time.Unix(0, n) }
	out := &lineWriter{stream: "stdout", out: f, now: now}
	errw := &lineWriter{stream: "stderr", out: f, now: now}
	for _, p := range []string{"hel", "lo\nwor", "ld\r\n"} {
		if _, err := out.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	errw.Write([]byte("oops\n\"quoted\"\n"))
	recs := readRecords(t, path)
	want := []logRecord{{1, "stdout", "hello"}, {2, "stdout", "world"}, {3, "stderr", "oops"}, {4, "stderr", `"quoted"`}}
	if fmt.Sprint(recs) != fmt.Sprint(want) {
		t.Fatalf("records %v, want %v", recs, want)
	}
	out.Write([]byte(strings.Repeat("x", maxLineBytes+5)))
	if got := readRecords(t, path); len(got) != 1 || len(got[0].D) != maxLineBytes {
		// The long line alone exceeds 400 bytes: the file rotated first.
		t.Fatalf("after a long line the file holds %d records", len(got))
	}
	if old := readRecords(t, path+".1"); fmt.Sprint(old) != fmt.Sprint(want) {
		t.Fatalf("rotated file holds %v", old)
	}
	out.Close() // the 5 x's left
	for i := 0; i < 20; i++ {
		errw.Write([]byte(fmt.Sprintf("line %d\n", i)))
	}
	for _, p := range []string{path, path + ".1"} {
		st, err := os.Stat(p)
		if err != nil || st.Size() > 400 {
			t.Fatalf("%s: %v, %v bytes (limit 400)", p, err, st.Size())
		}
	}
	last := readRecords(t, path)
	if last[len(last)-1].D != "line 19" {
		t.Fatalf("last record %v", last[len(last)-1])
	}
	f.Close()
	if _, err := f.Write([]byte("x\n")); err == nil {
		t.Fatal("write after Close succeeded")
	}
}

// writeRecords appends records to a task's log file as the capture does.
func writeRecords(t *testing.T, w *rotatingFile, stream string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		b, _ := json.Marshal(logRecord{T: int64(i), S: stream, D: fmt.Sprintf("line %d", i)})
		if _, err := w.Write(append(b, '\n')); err != nil {
			t.Fatal(err)
		}
	}
}

// collector gathers sent messages.
type collector struct {
	mu   sync.Mutex
	msgs []*api.LogMessage
}

func (c *collector) send(m *api.LogMessage) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, m)
	return nil
}

func (c *collector) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs {
		out = append(out, string(m.Data))
	}
	return out
}

// ReadLogs reads both files in order, honours tail and since, marks
// stderr, and follows across a rotation until its context ends.
func TestReadLogsFiles(t *testing.T) {
	state := t.TempDir()
	os.MkdirAll(logsDir(state), 0o700)
	e := &Executor{cfg: Config{StateDir: state}}
	ctx := context.Background()
	// Nothing logged yet: nothing sent.
	var none collector
	if err := e.ReadLogs(ctx, "t1", -1, 0, false, none.send); err != nil || len(none.msgs) != 0 {
		t.Fatalf("ReadLogs without a file: %v, %v", none.lines(), err)
	}
	w, err := openRotating(e.LogPath("t1"), 200)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	writeRecords(t, w, "stdout", 1, 6)
	writeRecords(t, w, "stderr", 6, 8)
	if _, err := os.Stat(e.LogPath("t1") + ".1"); err != nil {
		t.Fatalf("no rotation with 7 records: %v", err)
	}
	check := func(tail, since int64, want string) {
		t.Helper()
		var c collector
		if err := e.ReadLogs(ctx, "t1", tail, since, false, c.send); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(c.lines(), ","); got != want {
			t.Fatalf("tail %d since %d: %q, want %q", tail, since, got, want)
		}
		for _, m := range c.msgs {
			if m.TaskId != "t1" || (m.Stream == api.LogMessage_STREAM_STDERR) != (m.Timestamp >= 6) {
				t.Fatalf("message %v", m)
			}
		}
	}
	check(-1, 0, "line 1,line 2,line 3,line 4,line 5,line 6,line 7")
	check(2, 0, "line 6,line 7")
	check(0, 0, "")
	check(-1, 5, "line 5,line 6,line 7")
	check(10, 7, "line 7")

	fctx, cancel := context.WithCancel(ctx)
	var c collector
	done := make(chan error, 1)
	go func() { done <- e.ReadLogs(fctx, "t1", 1, 0, true, c.send) }()
	// One record at a time, each awaited: the file rotates twice meanwhile.
	want := "line 7"
	for i := 8; i <= 20; i++ {
		if i > 8 {
			writeRecords(t, w, "stdout", i-1, i)
			want += fmt.Sprintf(",line %d", i-1)
		}
		deadline := time.Now().Add(10 * time.Second)
		for strings.Join(c.lines(), ",") != want {
			if time.Now().After(deadline) {
				t.Fatalf("followed %q, want %q", strings.Join(c.lines(), ","), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end with its context")
	}
}
