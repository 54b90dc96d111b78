package ingress

import (
	"fmt"

	"github.com/shoalhq/shoal/overlay/internal/nft"
)

// ipForward is the sysctl that lets a host forward the flows it DNATs.
const ipForward = "/proc/sys/net/ipv4/ip_forward"

// ApplyHost makes services the whole routing mesh of the host network
// namespace at hostNS (/run/netns/NAME or /proc/PID/ns/net), in one
// atomic nftables batch: flows see the previous rules or the new ones,
// never a mix. A new flow to a published port on any local address of
// the host is DNATed to one of its service's backends, with the client's
// address kept (no masquerade); a service with no backends refuses (TCP
// reset, ICMP port unreachable). Flows already established keep their
// backend until they end, even when that backend is removed. It also
// sets net.ipv4.ip_forward=1 in hostNS (left set by RemoveHost).
//
// Connecting to a published port through a loopback address (127.0.0.1)
// from the host itself is not supported: the DNATed packet keeps a
// loopback source.
//
// Every backend's task must already list this host in its ApplyTask
// gateways: its replies would otherwise leave through the wrong node.
//
// It replaces whatever the table held (a previous ApplyHost, leftovers of
// a crashed agent); the same list again converges to the same rules. An
// empty list leaves an empty mesh (use RemoveHost to delete the table).
// It validates services first and changes nothing if they are invalid
// (ErrInvalidProtocol, ErrInvalidPort, ErrDuplicatePort,
// ErrInvalidBackend, ErrDuplicateBackend, wrapped with the offending
// field). It errs with ErrNamespace if hostNS cannot be used; any other
// error comes from the kernel: the batch was then not applied and the
// previous state holds, except when the error wraps syscall.ENOBUFS
// (acknowledgements lost): the batch may have been applied, and calling
// ApplyHost again settles it. Calls for the same hostNS are serialised
// within a process.
func ApplyHost(hostNS string, services []Published) error {
	if err := validateServices(services); err != nil {
		return err
	}
	services = normalizeServices(services)

	unlock := nsLocks.Lock(hostNS)
	defer unlock()
	s, err := openNft(hostNS, "hostNS")
	if err != nil {
		return err
	}
	defer s.Close()
	if err := ensureSysctl(hostNS, ipForward, "1"); err != nil {
		return err
	}

	chains, err := nft.TableChains(s.Conn, hostTable)
	if err != nil {
		return fmt.Errorf("ingress: list chains of table %s in %s: %w", HostTable, hostNS, err)
	}
	sets, err := tableSets(s.Conn, hostTable)
	if err != nil {
		return fmt.Errorf("ingress: list maps of table %s in %s: %w", HostTable, hostNS, err)
	}
	if err := programHost(s.Conn, services, chains, sets); err != nil {
		return fmt.Errorf("ingress: build batch for %s: %w", hostNS, err)
	}
	if err := s.Conn.Flush(); err != nil {
		return flushErr("program", HostTable, hostNS, err)
	}
	return nil
}

// RemoveHost deletes the routing mesh table of the host namespace at
// hostNS with everything in it: published ports stop being forwarded
// (flows already established keep their conntrack NAT until they end).
// Removing a table that does not exist succeeds. net.ipv4.ip_forward is
// left as it is. It errs with ErrNamespace if hostNS cannot be used.
func RemoveHost(hostNS string) error {
	unlock := nsLocks.Lock(hostNS)
	defer unlock()
	s, err := openNft(hostNS, "hostNS")
	if err != nil {
		return err
	}
	defer s.Close()
	return removeTable(s, hostTable, hostNS)
}
