package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/shoalhq/shoal/proto/api"
)

func TestParseTailAndSince(t *testing.T) {
	for in, want := range map[string]int64{"": -1, "all": -1, "0": 0, "25": 25} {
		if got, err := parseTail(in); err != nil || got != want {
			t.Fatalf("parseTail(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"-1", "x"} {
		if _, err := parseTail(bad); err == nil {
			t.Fatalf("parseTail(%q) succeeded", bad)
		}
	}
	now := time.Unix(1000, 0)
	for in, want := range map[string]int64{
		"":                            0,
		"10s":                         990e9,
		"1970-01-01T00:01:40Z":        100e9,
		"1970-01-01T00:01:40.5+00:00": 100.5e9,
	} {
		if got, err := parseSince(in, now); err != nil || got != want {
			t.Fatalf("parseSince(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"-5s", "yesterday"} {
		if _, err := parseSince(bad, now); err == nil {
			t.Fatalf("parseSince(%q) succeeded", bad)
		}
	}
}

// Lines carry a padded docker-style prefix; stderr lines and warnings go
// to stderr; --timestamps and --no-task-ids change the line and prefix.
func TestWriteLogMessage(t *testing.T) {
	tasks := []*api.Task{
		{Id: "aaaaaaaaaaaaaaaaaaaa", ServiceId: "svc1", Slot: 1, NodeId: "n1"},
		{Id: "bbbbbbbbbbbbbbbbbbbb", ServiceId: "svc1", Slot: 10, NodeId: "n2"},
	}
	names := taskNames{services: map[string]string{"svc1": "web"}, nodes: map[string]string{"n1": "host1", "n2": "longhost2"}}
	p := makePrefixes(tasks, names, true)
	var out, errw bytes.Buffer
	writeLogMessage(&out, &errw, &api.LogMessage{TaskId: "aaaaaaaaaaaaaaaaaaaa", NodeId: "n1", Data: []byte("hello")}, p, false)
	writeLogMessage(&out, &errw, &api.LogMessage{TaskId: "bbbbbbbbbbbbbbbbbbbb", NodeId: "n2", Data: []byte("oops"), Stream: api.LogMessage_STREAM_STDERR, Timestamp: 1.5e9}, p, true)
	writeLogMessage(&out, &errw, &api.LogMessage{TaskId: "cccccccccccccccccccc", NodeId: "n3", Data: []byte("new")}, p, false)
	writeLogMessage(&out, &errw, &api.LogMessage{NodeId: "n3", Data: []byte("cannot read the logs of node n3: down")}, p, false)
	wantOut := "web.1.aaaaaaaaaaaa@host1      | hello\n" +
		"cccccccccccc@n3               | new\n"
	wantErr := "web.10.bbbbbbbbbbbb@longhost2 | 1970-01-01T00:00:01.5Z oops\n" +
		"WARNING: cannot read the logs of node n3: down\n"
	if out.String() != wantOut || errw.String() != wantErr {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", out.String(), errw.String())
	}
	out.Reset()
	writeLogMessage(&out, &errw, &api.LogMessage{TaskId: "aaaaaaaaaaaaaaaaaaaa", Data: []byte("x")}, makePrefixes(tasks, names, false), false)
	if out.String() != "web.1@host1      | x\n" {
		t.Fatalf("--no-task-ids: %q", out.String())
	}
}
