package nstest

import "net/netip"

// Failer is what test checks need of *testing.T, *testing.B and
// *rapid.T, so that one check serves tests and property tests.
type Failer interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// Addrs parses addresses written in a test. It panics on a malformed one:
// use it with literals only.
func Addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}
