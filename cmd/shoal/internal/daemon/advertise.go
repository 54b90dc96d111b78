package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// advertiseAddr returns the address to advertise for a listener bound to
// listen when no --advertise-addr was given: listen itself, unless it is
// an unspecified address (0.0.0.0 or ::), which no peer can dial; then the
// one IPv4 global unicast address of the machine's interfaces that are
// up, with listen's port. It fails when there is no such address or more
// than one, naming them, as the choice must then be the operator's.
func advertiseAddr(listen net.Addr) (string, error) {
	ap, err := netip.ParseAddrPort(listen.String())
	if err != nil || !ap.Addr().IsUnspecified() {
		return listen.String(), nil
	}
	var candidates []netip.Addr
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("list network interfaces to pick an address to advertise: %w (pass --advertise-addr)", err)
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				candidates = append(candidates, p.Addr())
			}
		}
	}
	ip, err := chooseAdvertiseIP(candidates)
	if err != nil {
		return "", fmt.Errorf("--listen-addr %s listens on every interface and %w", listen, err)
	}
	return netip.AddrPortFrom(ip, ap.Port()).String(), nil
}

// chooseAdvertiseIP picks the one IPv4 global unicast address among
// candidates.
func chooseAdvertiseIP(candidates []netip.Addr) (netip.Addr, error) {
	var usable []netip.Addr
	for _, a := range candidates {
		a = a.Unmap()
		if a.Is4() && a.IsGlobalUnicast() {
			usable = append(usable, a)
		}
	}
	switch len(usable) {
	case 1:
		return usable[0], nil
	case 0:
		return netip.Addr{}, fmt.Errorf("this machine has no IPv4 address other nodes could reach: pass --advertise-addr HOST:PORT")
	}
	names := make([]string, len(usable))
	for i, a := range usable {
		names[i] = a.String()
	}
	return netip.Addr{}, fmt.Errorf("this machine has several addresses (%s): pass --advertise-addr with the one other nodes reach, or listen on it with --listen-addr", strings.Join(names, ", "))
}
