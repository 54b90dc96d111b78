package gossip

import (
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNormalize(t *testing.T) {
	good := Endpoint{
		ID: "t1", NetworkID: "n1", Addr: netip.MustParseAddr("10.0.0.5"),
		MAC: "02:42:0A:00:00:05", VTEP: netip.MustParseAddr("::ffff:192.0.2.1"),
		Aliases: []string{"b", "a", "b"},
	}
	norm, err := normalize(good)
	if err != nil {
		t.Fatalf("normalize(valid) = %v", err)
	}
	if norm.MAC != "02:42:0a:00:00:05" || !slices.Equal(norm.Aliases, []string{"a", "b"}) || !norm.VTEP.Is4() {
		t.Errorf("normalize = %+v: want lower-case MAC, sorted unique aliases, unmapped VTEP", norm)
	}
	if len(good.Aliases) != 3 {
		t.Errorf("normalize changed the caller's aliases")
	}
	tests := []struct {
		name string
		mod  func(*Endpoint)
		want string
	}{
		{"no ID", func(e *Endpoint) { e.ID = "" }, "empty ID"},
		{"no network", func(e *Endpoint) { e.NetworkID = "" }, "NetworkID"},
		{"no address", func(e *Endpoint) { e.Addr = netip.Addr{} }, "Addr"},
		{"no VTEP", func(e *Endpoint) { e.VTEP = netip.Addr{} }, "VTEP"},
		{"bad MAC", func(e *Endpoint) { e.MAC = "zz" }, "MAC"},
		{"empty alias", func(e *Endpoint) { e.Aliases = []string{""} }, "alias"},
	}
	for _, tc := range tests {
		e := good
		tc.mod(&e)
		_, err := normalize(e)
		if !errors.Is(err, ErrInvalidEndpoint) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrInvalidEndpoint naming %q", tc.name, err, tc.want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := Config{NodeName: "h1", BindAddr: netip.MustParseAddrPort("127.0.0.2:0"), Keys: [][]byte{testKey(1)}}.withDefaults()
	if err != nil {
		t.Fatalf("withDefaults = %v", err)
	}
	if c.BindAddr.Port() != DefaultPort || c.ProbeInterval != DefaultProbeInterval || c.Label != DefaultLabel ||
		c.Incarnation == 0 || c.Logger == nil || c.SuspicionMult != DefaultSuspicionMult {
		t.Errorf("defaults not applied: %+v", c)
	}
	tests := []struct {
		name string
		c    Config
		want string
	}{
		{"no name", Config{BindAddr: netip.MustParseAddrPort("127.0.0.2:1")}, "NodeName"},
		{"no address", Config{NodeName: "h"}, "BindAddr"},
		{"unspecified address", Config{NodeName: "h", BindAddr: netip.MustParseAddrPort("0.0.0.0:7946")}, "BindAddr"},
		{"negative knob", Config{NodeName: "h", BindAddr: netip.MustParseAddrPort("127.0.0.2:1"), GossipInterval: -time.Second}, "GossipInterval"},
		{"probe timeout above interval", Config{NodeName: "h", BindAddr: netip.MustParseAddrPort("127.0.0.2:1"), ProbeTimeout: time.Second}, "ProbeTimeout"},
		{"label too long for a packet", Config{NodeName: "h", BindAddr: netip.MustParseAddrPort("127.0.0.2:1"), Label: strings.Repeat("l", maxLabelBytes+1)}, "Label"},
	}
	for _, tc := range tests {
		tc.c.Keys = [][]byte{testKey(1)}
		_, err := tc.c.withDefaults()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrConfig naming %q", tc.name, err, tc.want)
		}
		if _, err := Start(tc.c); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Start err = %v, want ErrConfig", tc.name, err)
		}
	}
}

func TestParseMemberlistLine(t *testing.T) {
	tests := []struct {
		line  string
		level slog.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=1.2.3.4", slog.LevelDebug, "Stream connection from=1.2.3.4"},
		{"[INFO] memberlist: Marking h3 as failed", slog.LevelInfo, "Marking h3 as failed"},
		{"[WARN] memberlist: Refuting a dead message", slog.LevelWarn, "Refuting a dead message"},
		{"[ERR] memberlist: Failed to send", slog.LevelError, "Failed to send"},
		{"no level here", slog.LevelInfo, "no level here"},
		{"[ODD] text", slog.LevelInfo, "[ODD] text"},
	}
	for _, tc := range tests {
		level, msg := parseMemberlistLine(tc.line)
		if level != tc.level || msg != tc.msg {
			t.Errorf("parse(%q) = %v %q, want %v %q", tc.line, level, msg, tc.level, tc.msg)
		}
	}
}
