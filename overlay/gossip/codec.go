package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// The wire format is a compact binary encoding of our own: small enough
// that a delta fits in one UDP packet with room to spare, and decoded
// without reflection. Every message starts with the format version and
// the message kind; integers are unsigned varints; a string or a byte
// string is its length followed by its bytes; an address is 0, 4 or 16
// bytes (a byte string), a node's address that and a port. Decoding never panics and never allocates more than the input
// can describe; an unknown format version or kind is an error, so a newer
// peer's messages are dropped rather than misread.

const (
	wireVersion byte = 1

	kindDelta byte = 1 // a delta, broadcast over UDP
	kindState byte = 2 // every node's snapshot, in push-pull over TCP

	flagDeleted byte = 1 << 0

	// maxDeltaBytes bounds an encoded delta. memberlist packs broadcasts
	// into UDP packets of 1400 bytes (UDPBufferSize); a larger message
	// would never be sent. The margin covers memberlist's framing.
	maxDeltaBytes = 1200
)

// errDecode is why a message could not be decoded.
var errDecode = errors.New("malformed gossip message")

// encodeDelta returns the wire form of d.
func encodeDelta(d delta) []byte {
	var w writer
	w.byte(wireVersion)
	w.byte(kindDelta)
	w.str(d.Node)
	w.addrPort(d.Addr)
	w.uvarint(d.Inc)
	w.entry(entryRecord{ID: d.ID, Version: d.Version, Deleted: d.Deleted, Endpoint: d.Endpoint}, !d.isAnnouncement())
	return w.buf
}

// encodeState returns the wire form of a full state.
func encodeState(nodes []nodeSnapshot) []byte {
	var w writer
	w.byte(wireVersion)
	w.byte(kindState)
	w.uvarint(uint64(len(nodes)))
	for _, sn := range nodes {
		w.str(sn.Node)
		w.addrPort(sn.Addr)
		w.uvarint(sn.Inc)
		w.uvarint(sn.Complete)
		w.uvarint(uint64(len(sn.Seen)))
		for _, v := range sn.Seen {
			w.uvarint(v)
		}
		w.uvarint(uint64(len(sn.Entries)))
		for _, e := range sn.Entries {
			w.entry(e, true)
		}
	}
	return w.buf
}

// messageKind returns the kind of an encoded message, or an error for
// one that is empty or of an unknown format version.
func messageKind(b []byte) (byte, error) {
	if len(b) < 2 {
		return 0, fmt.Errorf("%w: %d bytes, too short for a header", errDecode, len(b))
	}
	if b[0] != wireVersion {
		return 0, fmt.Errorf("%w: format version %d, this node speaks %d", errDecode, b[0], wireVersion)
	}
	return b[1], nil
}

// decodeDelta parses a message of kind kindDelta.
func decodeDelta(b []byte) (delta, error) {
	if k, err := messageKind(b); err != nil {
		return delta{}, err
	} else if k != kindDelta {
		return delta{}, fmt.Errorf("%w: kind %d is not a delta", errDecode, k)
	}
	r := reader{buf: b[2:]}
	d := delta{Node: r.str(), Addr: r.addrPort(), Inc: r.uvarint()}
	e := r.entry(d.Node, true)
	if r.err == nil && len(r.buf) != 0 {
		r.fail("%d trailing bytes", len(r.buf))
	}
	if r.err != nil {
		return delta{}, r.err
	}
	if d.Node == "" {
		return delta{}, fmt.Errorf("%w: delta without a node name", errDecode)
	}
	d.ID, d.Version, d.Deleted, d.Endpoint = e.ID, e.Version, e.Deleted, e.Endpoint
	return d, nil
}

// decodeState parses a message of kind kindState.
func decodeState(b []byte) ([]nodeSnapshot, error) {
	if k, err := messageKind(b); err != nil {
		return nil, err
	} else if k != kindState {
		return nil, fmt.Errorf("%w: kind %d is not a state", errDecode, k)
	}
	r := reader{buf: b[2:]}
	n := r.count()
	out := make([]nodeSnapshot, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		sn := nodeSnapshot{Node: r.str(), Addr: r.addrPort(), Inc: r.uvarint(), Complete: r.uvarint()}
		if r.err == nil && sn.Node == "" {
			r.fail("snapshot without a node name")
		}
		for j, ns := 0, r.count(); j < ns && r.err == nil; j++ {
			sn.Seen = append(sn.Seen, r.uvarint())
		}
		for j, ne := 0, r.count(); j < ne && r.err == nil; j++ {
			e := r.entry(sn.Node, false)
			sn.Entries = append(sn.Entries, e)
		}
		out = append(out, sn)
	}
	if r.err == nil && len(r.buf) != 0 {
		r.fail("%d trailing bytes", len(r.buf))
	}
	if r.err != nil {
		return nil, r.err
	}
	return out, nil
}

// writer appends wire encodings to buf.
type writer struct{ buf []byte }

func (w *writer) byte(b byte)       { w.buf = append(w.buf, b) }
func (w *writer) uvarint(v uint64)  { w.buf = binary.AppendUvarint(w.buf, v) }
func (w *writer) bytes(b []byte)    { w.uvarint(uint64(len(b))); w.buf = append(w.buf, b...) }
func (w *writer) str(s string)      { w.uvarint(uint64(len(s))); w.buf = append(w.buf, s...) }
func (w *writer) addr(a netip.Addr) { w.bytes(a.AsSlice()) }

// addrPort writes an address and a port; the zero AddrPort as no address
// and port 0.
func (w *writer) addrPort(ap netip.AddrPort) {
	w.addr(ap.Addr())
	w.uvarint(uint64(ap.Port()))
}

// entry writes one entry change; the endpoint follows when the entry is
// not a tombstone and withEndpoint is set (an announcement has none).
func (w *writer) entry(e entryRecord, withEndpoint bool) {
	w.str(e.ID)
	w.uvarint(e.Version)
	var flags byte
	if e.Deleted {
		flags |= flagDeleted
	}
	w.byte(flags)
	if e.Deleted || !withEndpoint {
		return
	}
	ep := e.Endpoint
	w.str(ep.NetworkID)
	w.str(ep.ServiceID)
	w.str(ep.ServiceName)
	w.uvarint(uint64(len(ep.Aliases)))
	for _, a := range ep.Aliases {
		w.str(a)
	}
	w.addr(ep.Addr)
	w.str(ep.MAC)
	w.addr(ep.VTEP)
	w.addr(ep.VIP)
	w.uvarint(uint64(len(ep.Ports)))
	for _, p := range ep.Ports {
		w.str(p)
	}
}

// reader consumes wire encodings from buf; the first error sticks and
// every later read returns zero values.
type reader struct {
	buf []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errDecode, fmt.Sprintf(format, args...))
	}
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.buf) == 0 {
		r.fail("truncated")
		return 0
	}
	b := r.buf[0]
	r.buf = r.buf[1:]
	return b
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

// count reads a number of items that follow; each takes at least one
// byte, so a count above the bytes left is malformed (and would make the
// decoder allocate for nothing).
func (r *reader) count() int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.buf)) {
		r.fail("count %d exceeds the %d bytes left", n, len(r.buf))
		return 0
	}
	return int(n)
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.buf)) {
		r.fail("length %d exceeds the %d bytes left", n, len(r.buf))
		return nil
	}
	b := r.buf[:n:n]
	r.buf = r.buf[n:]
	return b
}

func (r *reader) str() string { return string(r.bytes()) }

func (r *reader) addr() netip.Addr {
	b := r.bytes()
	if r.err != nil || len(b) == 0 {
		return netip.Addr{}
	}
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		r.fail("address of %d bytes", len(b))
	}
	return a
}

func (r *reader) addrPort() netip.AddrPort {
	a, port := r.addr(), r.uvarint()
	if port > 65535 {
		r.fail("port %d", port)
		return netip.AddrPort{}
	}
	if !a.IsValid() {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a, uint16(port))
}

// entry reads one entry change of node. In a delta (isDelta) an empty ID
// is an announcement, with version 0 and no endpoint; any other entry
// needs an ID, a version and, unless it is a tombstone, a valid endpoint.
func (r *reader) entry(node string, isDelta bool) entryRecord {
	e := entryRecord{ID: r.str(), Version: r.uvarint()}
	flags := r.byte()
	if r.err != nil {
		return entryRecord{}
	}
	if flags&^flagDeleted != 0 {
		r.fail("unknown flags %#x", flags)
		return entryRecord{}
	}
	e.Deleted = flags&flagDeleted != 0
	if e.ID == "" {
		if !isDelta || e.Version != 0 {
			r.fail("entry without an ID")
		}
		return e
	}
	if e.Version == 0 {
		r.fail("entry %q at version 0", e.ID)
		return entryRecord{}
	}
	if e.Deleted {
		return e
	}
	ep := Endpoint{ID: e.ID, NetworkID: r.str(), ServiceID: r.str(), ServiceName: r.str()}
	for i, n := 0, r.count(); i < n && r.err == nil; i++ {
		ep.Aliases = append(ep.Aliases, r.str())
	}
	ep.Addr = r.addr()
	ep.MAC = r.str()
	ep.VTEP = r.addr()
	ep.VIP = r.addr()
	for i, n := 0, r.count(); i < n && r.err == nil; i++ {
		ep.Ports = append(ep.Ports, r.str())
	}
	if r.err != nil {
		return entryRecord{}
	}
	norm, err := normalize(ep)
	if err != nil {
		r.fail("entry %q: %v", e.ID, err)
		return entryRecord{}
	}
	norm.Node = node
	e.Endpoint = norm
	return e
}
