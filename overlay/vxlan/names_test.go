package vxlan

import (
	"net/netip"
	"testing"

	"pgregory.net/rapid"
)

func TestNamesRoundTripAndFitIFNAMSIZ(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		vni := rapid.Uint32Range(1, MaxVNI).Draw(t, "vni")
		for _, name := range []string{BridgeName(vni), VxlanName(vni)} {
			if len(name) > 15 {
				t.Fatalf("%q is longer than 15 characters", name)
			}
			if got, ok := vniFromName(name); !ok || got != vni {
				t.Fatalf("vniFromName(%q) = %d, %v; want %d", name, got, ok, vni)
			}
		}
	})
	for _, name := range []string{"shbr", "shbr0", "shbr01", "shvx16777216", "shbrx", "shbr-1", "eth0", "shv0123456789ab"} {
		if vni, ok := vniFromName(name); ok {
			t.Errorf("vniFromName(%q) = %d: not one of our names", name, vni)
		}
	}
}

func TestMACsAreUnicastLocalAndDistinct(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := netip.AddrFrom4([4]byte(rapid.SliceOfN(rapid.Byte(), 4, 4).Draw(t, "addr")))
		mac := MACFor(a)
		if len(mac) != 6 || mac[0] != 0x02 || mac[1] != 0x42 || [4]byte(mac[2:]) != a.As4() {
			t.Fatalf("MACFor(%v) = %s, want 02:42 and the address bytes", a, mac)
		}
		vni := rapid.Uint32Range(1, MaxVNI).Draw(t, "vni")
		br := BridgeMAC(vni, a)
		if err := validMAC("BridgeMAC", br); err != nil || br[0]&0x02 == 0 {
			t.Fatalf("BridgeMAC(%d, %v) = %s is not a locally administered unicast MAC: %v", vni, a, br, err)
		}
		if br[1] == 0x42 {
			t.Fatalf("BridgeMAC %s could collide with a task MAC", br)
		}
		if BridgeMAC(vni, a).String() != br.String() {
			t.Fatal("BridgeMAC is not deterministic")
		}
	})
	if MACFor(netip.MustParseAddr("fd00::1")) != nil {
		t.Error("MACFor(IPv6) is not nil")
	}
}

func TestLastAddr(t *testing.T) {
	for p, want := range map[string]string{
		"10.20.0.0/24": "10.20.0.255", "10.20.0.77/30": "10.20.0.79", "0.0.0.0/0": "255.255.255.255", "10.0.0.0/8": "10.255.255.255",
	} {
		if got := lastAddr(netip.MustParsePrefix(p)); got.String() != want {
			t.Errorf("lastAddr(%s) = %v, want %s", p, got, want)
		}
	}
}
