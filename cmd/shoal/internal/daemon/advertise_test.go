package daemon

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestChooseAdvertiseIP(t *testing.T) {
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		in        []netip.Addr
		want      string
		errSubstr string
	}{
		{"one address", addrs("10.1.2.3"), "10.1.2.3", ""},
		{"link-local and IPv6 are skipped", addrs("169.254.1.1", "fe80::1", "2001:db8::1", "192.168.5.9"), "192.168.5.9", ""},
		{"IPv4-mapped counts as IPv4", addrs("::ffff:10.0.0.7"), "10.0.0.7", ""},
		{"none", addrs("fe80::1"), "", "no IPv4 address"},
		{"several", addrs("10.0.0.1", "172.17.0.1"), "", "several addresses (10.0.0.1, 172.17.0.1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := chooseAdvertiseIP(tc.in)
			if tc.errSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errSubstr) || !strings.Contains(err.Error(), "--advertise-addr") {
					t.Fatalf("err = %v, want one containing %q and naming --advertise-addr", err, tc.errSubstr)
				}
				return
			}
			if err != nil || got.String() != tc.want {
				t.Fatalf("got %v, %v; want %s", got, err, tc.want)
			}
		})
	}
}

func TestAdvertiseAddrKeepsASpecificListenAddress(t *testing.T) {
	got, err := advertiseAddr(&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 4242})
	if err != nil || got != "127.0.0.1:4242" {
		t.Fatalf("got %q, %v", got, err)
	}
}
