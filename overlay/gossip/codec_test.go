package gossip

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"testing"

	"pgregory.net/rapid"
)

// genEndpoint draws a valid, normalised endpoint of node with ID id.
func genEndpoint(t *rapid.T, node, id string) Endpoint {
	addr := func(label string) netip.Addr {
		if rapid.Bool().Draw(t, label+"6") {
			return netip.AddrFrom16([16]byte(rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, label)))
		}
		return netip.AddrFrom4([4]byte(rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, label)))
	}
	name := rapid.StringMatching(`[a-z0-9.-]{0,20}`)
	e := Endpoint{
		ID: id, NetworkID: rapid.StringMatching(`[a-z0-9]{1,25}`).Draw(t, "net"),
		ServiceID: name.Draw(t, "sid"), ServiceName: name.Draw(t, "sname"),
		Aliases: rapid.SliceOfN(rapid.StringMatching(`[a-z]{1,10}`), 0, 4).Draw(t, "aliases"),
		Addr:    addr("addr"),
		MAC:     fmt.Sprintf("%x", rapid.SliceOfN(rapid.Byte(), 6, 6).Draw(t, "mac")),
		VTEP:    addr("vtep"),
		Ports:   rapid.SliceOfN(rapid.StringMatching(`(tcp|udp)/[1-9][0-9]{0,3}:[1-9][0-9]{0,3}`), 0, 3).Draw(t, "ports"),
	}
	e.MAC = e.MAC[0:2] + ":" + e.MAC[2:4] + ":" + e.MAC[4:6] + ":" + e.MAC[6:8] + ":" + e.MAC[8:10] + ":" + e.MAC[10:12]
	if rapid.Bool().Draw(t, "hasVIP") {
		e.VIP = addr("vip")
	}
	norm, err := normalize(e)
	if err != nil {
		t.Fatalf("generated an invalid endpoint: %v", err)
	}
	norm.Node = node
	return norm
}

// genAddrPort draws a node's gossip address, or none.
func genAddrPort(t *rapid.T) netip.AddrPort {
	if rapid.Bool().Draw(t, "noAddr") {
		return netip.AddrPort{}
	}
	a := netip.AddrFrom4([4]byte(rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, "gossipAddr")))
	return netip.AddrPortFrom(a, rapid.Uint16().Draw(t, "port"))
}

func genDelta(t *rapid.T) delta {
	d := delta{Node: rapid.StringMatching(`[a-z0-9-]{1,30}`).Draw(t, "node"), Addr: genAddrPort(t), Inc: rapid.Uint64().Draw(t, "inc")}
	switch rapid.IntRange(0, 3).Draw(t, "kind") {
	case 0: // announcement
	case 3: // leaving
		d.Deleted = true
	case 1:
		d.ID, d.Version, d.Deleted = rapid.StringMatching(`[a-z0-9]{1,64}`).Draw(t, "id"), rapid.Uint64Min(1).Draw(t, "v"), true
	default:
		d.ID, d.Version = rapid.StringMatching(`[a-z0-9]{1,64}`).Draw(t, "id"), rapid.Uint64Min(1).Draw(t, "v")
		d.Endpoint = genEndpoint(t, d.Node, d.ID)
	}
	return d
}

func genSnapshots(t *rapid.T) []nodeSnapshot {
	var out []nodeSnapshot
	for range rapid.IntRange(0, 4).Draw(t, "nodes") {
		sn := nodeSnapshot{
			Node: rapid.StringMatching(`[a-z0-9-]{1,30}`).Draw(t, "node"), Addr: genAddrPort(t),
			Inc: rapid.Uint64().Draw(t, "inc"), Complete: rapid.Uint64().Draw(t, "complete"),
			Seen: rapid.SliceOfN(rapid.Uint64(), 0, 3).Draw(t, "seen"),
		}
		if len(sn.Seen) == 0 {
			sn.Seen = nil
		}
		for range rapid.IntRange(0, 4).Draw(t, "entries") {
			e := entryRecord{ID: rapid.StringMatching(`[a-z0-9]{1,64}`).Draw(t, "id"), Version: rapid.Uint64Min(1).Draw(t, "v")}
			if e.Deleted = rapid.Bool().Draw(t, "deleted"); !e.Deleted {
				e.Endpoint = genEndpoint(t, sn.Node, e.ID)
			}
			sn.Entries = append(sn.Entries, e)
		}
		out = append(out, sn)
	}
	return out
}

func TestCodecRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		d := genDelta(t)
		b := encodeDelta(d)
		got, err := decodeDelta(b)
		if err != nil {
			t.Fatalf("decode delta: %v", err)
		}
		if !reflect.DeepEqual(got, d) {
			t.Fatalf("delta round trip:\n got  %+v\n want %+v", got, d)
		}
		if !d.isAnnouncement() && !d.Deleted && len(d.Endpoint.Aliases) <= 4 && len(b) > maxDeltaBytes {
			t.Fatalf("an ordinary endpoint encodes to %d bytes, above the %d limit", len(b), maxDeltaBytes)
		}
		sns := genSnapshots(t)
		gotS, err := decodeState(encodeState(sns))
		if err != nil {
			t.Fatalf("decode state: %v", err)
		}
		if len(sns) == 0 {
			sns = []nodeSnapshot{}
		}
		if !reflect.DeepEqual(gotS, sns) {
			t.Fatalf("state round trip:\n got  %+v\n want %+v", gotS, sns)
		}
	})
}

// checkDecodeNoPanic decodes arbitrary bytes, and every truncation of a
// valid message, as both kinds: errors are fine, panics are not, and a
// truncated message never decodes.
func checkDecodeNoPanic(t *rapid.T) {
	b := rapid.SliceOfN(rapid.Byte(), 0, 300).Draw(t, "bytes")
	_, _ = decodeDelta(b)
	_, _ = decodeState(b)
	if len(b) >= 2 {
		b[0], b[1] = wireVersion, kindState
		_, _ = decodeState(b)
		b[1] = kindDelta
		_, _ = decodeDelta(b)
	}
	full := encodeDelta(genDelta(t))
	for i := range len(full) {
		if _, err := decodeDelta(full[:i]); err == nil {
			t.Fatalf("truncated delta of %d/%d bytes decoded", i, len(full))
		}
	}
}

func TestDecodeNeverPanics(t *testing.T) { rapid.Check(t, checkDecodeNoPanic) }

// FuzzDecode runs the same check under go test -fuzz.
func FuzzDecode(f *testing.F) { f.Fuzz(rapid.MakeFuzz(checkDecodeNoPanic)) }

func TestDecodeRejects(t *testing.T) {
	valid := encodeDelta(pub("x", 1, 1, ep("a", "n1", 1)))
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"other format version", append([]byte{wireVersion + 1}, valid[1:]...)},
		{"state where a delta is expected", encodeState(nil)},
		{"trailing bytes", append(append([]byte{}, valid...), 0)},
		{"no node name", encodeDelta(delta{Inc: 1})},
		{"entry at version 0", encodeDelta(delta{Node: "x", Inc: 1, ID: "a", Deleted: true})},
		{"invalid endpoint", encodeDelta(pub("x", 1, 1, Endpoint{ID: "a", NetworkID: "n1"}))},
		{"count beyond the input", []byte{wireVersion, kindDelta, 200}},
	}
	for _, tc := range tests {
		if _, err := decodeDelta(tc.b); !errors.Is(err, errDecode) {
			t.Errorf("%s: err = %v, want errDecode", tc.name, err)
		}
	}
	if _, err := decodeState([]byte{wireVersion, kindState, 5}); !errors.Is(err, errDecode) {
		t.Errorf("state counting 5 nodes in no bytes: err = %v, want errDecode", err)
	}
}
