package nft

import (
	"errors"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
	"pgregory.net/rapid"
)

// TestParseVerdictOfKernelElements: the verdicts of a map written to the
// kernel and read back are decoded to what was written.
func TestParseVerdictOfKernelElements(t *testing.T) {
	s := openSession(t, testRun.NewNS(t, "vd"))
	s.Conn.AddTable(testTable)
	target := s.Conn.AddChain(&nftables.Chain{Name: "t_target", Table: testTable})
	m := &nftables.Set{Table: testTable, ID: 1, Name: "vmap", IsMap: true, KeyType: nftables.TypeInteger, DataType: nftables.TypeVerdict}
	want := map[uint32]struct {
		kind  expr.VerdictKind
		chain string
	}{
		0: {expr.VerdictGoto, target.Name},
		1: {expr.VerdictJump, target.Name},
		2: {expr.VerdictAccept, ""},
		3: {expr.VerdictDrop, ""},
	}
	var elements []nftables.SetElement
	for k, v := range want {
		elements = append(elements, nftables.SetElement{Key: NativeUint32(k), VerdictData: &expr.Verdict{Kind: v.kind, Chain: v.chain}})
	}
	if err := s.Conn.AddSet(m, elements); err != nil {
		t.Fatal(err)
	}
	if err := s.Conn.Flush(); err != nil {
		t.Fatalf("write the map: %v", err)
	}
	got, err := s.Conn.GetSetElements(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d elements read back, want %d", len(got), len(want))
	}
	for _, e := range got {
		k := ReadNativeUint32(e.Key)
		kind, chain, err := ParseVerdict(e.Val)
		if err != nil {
			t.Fatalf("key %d: %v", k, err)
		}
		if w := want[k]; kind != w.kind || chain != w.chain {
			t.Errorf("key %d: verdict %d %q, want %d %q", k, kind, chain, w.kind, w.chain)
		}
	}
}

func TestParseVerdictRefusesMalformedData(t *testing.T) {
	// header is a netlink attribute header: length, then type, in host
	// order.
	header := func(n int, typ uint16) []byte {
		return append(binaryutil.NativeEndian.PutUint16(uint16(n)), binaryutil.NativeEndian.PutUint16(typ)...)
	}
	attr := func(typ uint16, value []byte) []byte {
		b := append(header(unix.SizeofNlAttr+len(value), typ), value...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	cases := map[string][]byte{
		"truncated header":       {8, 0},
		"length past the end":    append(header(64, unix.NFTA_VERDICT_CODE), 0, 0, 0, 0),
		"length below a header":  header(2, unix.NFTA_VERDICT_CODE),
		"no code":                attr(unix.NFTA_VERDICT_CHAIN, []byte("x\x00")),
		"code of the wrong size": attr(unix.NFTA_VERDICT_CODE, []byte{0, 1}),
	}
	for name, b := range cases {
		if _, _, err := ParseVerdict(b); !errors.Is(err, ErrMalformedVerdict) {
			t.Errorf("%s: ParseVerdict(%x) = %v, want ErrMalformedVerdict", name, b, err)
		}
	}
	good := append(attr(unix.NFTA_VERDICT_CODE, []byte{0xff, 0xff, 0xff, 0xfc}), attr(unix.NFTA_VERDICT_CHAIN, []byte("ep_x\x00"))...)
	if kind, chain, err := ParseVerdict(good); err != nil || kind != expr.VerdictGoto || chain != "ep_x" {
		t.Errorf("ParseVerdict(goto ep_x) = %d %q %v", kind, chain, err)
	}
}

func TestNativeUint32RoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := rapid.Uint32().Draw(t, "v")
		b := NativeUint32(v)
		if len(b) != 4 || ReadNativeUint32(b) != v {
			t.Fatalf("NativeUint32(%d) = %x, read back as %d", v, b, ReadNativeUint32(b))
		}
	})
}

func TestIfName(t *testing.T) {
	b := IfName("eth0")
	if len(b) != unix.IFNAMSIZ || string(b[:4]) != "eth0" {
		t.Fatalf("IfName(eth0) = %q", b)
	}
	for _, c := range b[4:] {
		if c != 0 {
			t.Fatalf("IfName(eth0) = %q: not zero-padded", b)
		}
	}
}

func TestExprTypes(t *testing.T) {
	got := ExprTypes([]expr.Any{&expr.Payload{}, &expr.Cmp{}})
	if want := "*expr.Payload *expr.Cmp"; got != want {
		t.Fatalf("ExprTypes = %q, want %q", got, want)
	}
}
