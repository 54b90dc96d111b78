package sandbox

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Defaults and limits.
const (
	// HostIfPrefix starts the name of every host-side veth Attach makes.
	HostIfPrefix = "shv"
	// DefaultMTU is the task interface's MTU when Attachment.MTU is 0; it
	// matches the overlay's VXLAN devices and bridges.
	DefaultMTU = 1450
	// MinMTU is the smallest accepted MTU.
	MinMTU = 1280
	// maxIfName is the kernel's limit on interface names (IFNAMSIZ-1).
	maxIfName = 15
)

// Attachment describes one task interface on one overlay network.
type Attachment struct {
	// HostNS is the host's network namespace path; "" is the caller's own.
	HostNS string
	// TaskNS is the task's network namespace path (a bind mount such as
	// /run/netns/X, or /proc/PID/ns/net). Required.
	TaskNS string
	// Bridge is the network's bridge in HostNS. Required; it must exist.
	Bridge string
	// HostIf is the veth's name in HostNS: HostIfPrefix and at most 15
	// characters; use IfNameFor.
	HostIf string
	// IfName is the interface's name inside TaskNS: eth0, eth1, …
	IfName string
	// Addr is the task's IPv4 address with the network's prefix length.
	Addr netip.Prefix
	// MAC is the task interface's unicast MAC (vxlan.MACFor(Addr)).
	MAC net.HardwareAddr
	// Gateway, when valid, becomes the task's default route via IfName;
	// it must be inside Addr's prefix. When not set, a default route via
	// IfName is removed.
	Gateway netip.Addr
	// MTU of both veth ends; 0 means DefaultMTU. At most the bridge's MTU.
	MTU int
}

// IfNameFor returns the host-side veth name of task taskID on network
// networkID: HostIfPrefix and 12 hex digits of a hash of both (15
// characters). The same IDs always give the same name, so a restarted
// agent finds its veths again; different IDs collide with probability
// about n²/2⁴⁹ for n attachments on a host.
func IfNameFor(taskID, networkID string) string {
	sum := sha256.Sum256([]byte(taskID + "\x00" + networkID))
	return HostIfPrefix + hex.EncodeToString(sum[:6])
}

func (a *Attachment) validate() error {
	if a.TaskNS == "" {
		return fmt.Errorf("%w: Attachment.TaskNS is empty: give the task's network namespace path", ErrInvalid)
	}
	if a.Bridge == "" {
		return fmt.Errorf("%w: Attachment.Bridge is empty: give the network's bridge (from EnsureNetwork)", ErrInvalid)
	}
	if err := validHostIf("Attachment.HostIf", a.HostIf); err != nil {
		return err
	}
	if err := validIfName("Attachment.IfName", a.IfName); err != nil {
		return err
	}
	if a.IfName == "lo" {
		return fmt.Errorf("%w: Attachment.IfName must not be lo", ErrInvalid)
	}
	if !a.Addr.IsValid() || !a.Addr.Addr().Unmap().Is4() {
		return fmt.Errorf("%w: Attachment.Addr %v is not an IPv4 address with prefix length (IPv6 is not supported)", ErrInvalid, a.Addr)
	}
	a.Addr = netip.PrefixFrom(a.Addr.Addr().Unmap(), a.Addr.Bits())
	if a.Addr.Bits() == 0 || a.Addr.Addr().IsUnspecified() || a.Addr.Addr().IsMulticast() || a.Addr.Addr().IsLoopback() {
		return fmt.Errorf("%w: Attachment.Addr %v is not a usable unicast address", ErrInvalid, a.Addr)
	}
	if len(a.MAC) != 6 || a.MAC[0]&1 != 0 || bytes.Equal(a.MAC, net.HardwareAddr{0, 0, 0, 0, 0, 0}) {
		return fmt.Errorf("%w: Attachment.MAC %q is not a 6-byte unicast Ethernet address", ErrInvalid, a.MAC)
	}
	if a.Gateway.IsValid() {
		a.Gateway = a.Gateway.Unmap()
		if !a.Addr.Contains(a.Gateway) || a.Gateway == a.Addr.Addr() {
			return fmt.Errorf("%w: Attachment.Gateway %v is not another address inside Attachment.Addr %v", ErrInvalid, a.Gateway, a.Addr)
		}
	}
	if a.MTU == 0 {
		a.MTU = DefaultMTU
	}
	if a.MTU < MinMTU || a.MTU > 65535 {
		return fmt.Errorf("%w: Attachment.MTU %d is outside %d..65535", ErrInvalid, a.MTU, MinMTU)
	}
	return nil
}

func validIfName(field, name string) error {
	if name == "" || len(name) > maxIfName || name == "." || name == ".." ||
		strings.ContainsAny(name, "/: \t\n\x00") {
		return fmt.Errorf("%w: %s %q is not a valid interface name (1..%d characters, no '/', ':' or spaces)", ErrInvalid, field, name, maxIfName)
	}
	return nil
}

func validHostIf(field, name string) error {
	if err := validIfName(field, name); err != nil {
		return err
	}
	if !strings.HasPrefix(name, HostIfPrefix) {
		return fmt.Errorf("%w: %s %q must start with %q (use IfNameFor)", ErrInvalid, field, name, HostIfPrefix)
	}
	return nil
}
