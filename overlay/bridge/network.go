package bridge

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"slices"
	"sync"

	"github.com/shoalhq/shoal/overlay/sandbox"
)

// Network is the bridge network of one host: its kernel objects in the
// host namespace and the allocation table of its tasks. Its methods are
// safe for concurrent use. One Network at a time may own a state file
// (and a bridge): two open at once would hand out addresses independently.
type Network struct {
	cfg Config
	gw  netip.Addr

	mu     sync.Mutex // serialises Reconcile, Attach, Detach and Remove
	alloc  *allocator
	closed bool
}

// Open validates cfg (defaults filled in), loads cfg.StateFile and makes
// the host side of the network exist (Reconcile). It is idempotent: a
// second Open with the same Config finds everything in place and keeps
// the addresses of the tasks recorded in the state file. When cfg.Subnet
// differs from the one the state file was written with, the tasks whose
// addresses fall outside it lose them (and their veths): Attach them again.
//
// It errs with ErrInvalid for a bad Config, ErrState for an unreadable
// state file, ErrSubnetConflict when the subnet overlaps a route or
// address of the host namespace, and ErrNameInUse when cfg.Bridge is not
// a bridge; in these cases nothing was changed. On a kernel error part of
// the work may be done and Open may be called again.
func Open(cfg Config) (*Network, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	alloc, _, err := loadState(cfg.StateFile, cfg.Subnet)
	if err != nil {
		return nil, err
	}
	n := &Network{cfg: cfg, gw: gateway(cfg.Subnet), alloc: alloc}
	if err := n.Reconcile(); err != nil {
		return nil, err
	}
	return n, nil
}

// Config returns the network's configuration with its defaults filled in.
func (n *Network) Config() Config { return n.cfg }

// Gateway returns the bridge's address, the tasks' default gateway.
func (n *Network) Gateway() netip.Addr { return n.gw }

// Reconcile converges the host namespace with what the network needs: the
// bridge (MTU, fixed MAC, the gateway as its only IPv4 address, up), IPv4
// forwarding, the NAT table, and no bridge ports but those of allocated
// tasks (a veth left by a crash is deleted); then it writes the state
// file. Open calls it; the agent may call it again at any time (after an
// operator flushed the ruleset, for instance). Errors are as for Open.
func (n *Network) Reconcile() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	h, err := openHost(n.cfg.HostNS)
	if err != nil {
		return err
	}
	defer h.close()
	idx, err := h.findBridge(n.cfg.Bridge)
	if err != nil {
		return err
	}
	if err := h.checkSubnet(n.cfg.Subnet, idx); err != nil {
		return err
	}
	if idx, err = h.ensureBridge(n.cfg); err != nil {
		return err
	}
	if err := enableForwarding(n.cfg.HostNS); err != nil {
		return err
	}
	if err := ensureNAT(n.cfg.HostNS, n.cfg.Subnet, n.cfg.Bridge); err != nil {
		return err
	}
	ports, err := h.ports(idx)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for task := range n.alloc.byTask {
		want[n.hostIf(task)] = true
	}
	for _, p := range ports {
		if want[p] {
			continue
		}
		if err := sandbox.Detach(n.cfg.HostNS, p); err != nil {
			return fmt.Errorf("bridge: remove leftover port %s of %s: %w", p, n.cfg.Bridge, err)
		}
	}
	return saveState(n.cfg.StateFile, n.alloc)
}

// hostIf is the host-side veth name of task.
func (n *Network) hostIf(task string) string { return sandbox.IfNameFor(task, n.cfg.Bridge) }

// Attach gives task taskID, whose network namespace is at taskNS, its
// address on the network and attaches it: a veth whose host end is a port
// of the bridge and whose task end is TaskIfName with the address, a MAC
// derived from it, the network's MTU and a default route via Gateway.
// It returns the address with the subnet's prefix length.
//
// The address is the task's existing one, if it has one (Attach is
// idempotent, after a restart too: a new taskNS for the same task moves
// the attachment there), else the next free address after the last one
// handed out, recorded in the state file before the kernel is touched.
// It errs with ErrInvalid for an empty taskID or taskNS, ErrHostNamespace
// when taskNS is the host namespace, ErrExhausted when the subnet is
// full, and ErrState when the allocation cannot be saved (it is then
// undone). On a kernel error the address stays allocated to the task:
// call Attach again to converge, or Detach.
func (n *Network) Attach(taskID, taskNS string) (netip.Prefix, error) {
	if taskID == "" {
		return netip.Prefix{}, fmt.Errorf("%w: empty task ID", ErrInvalid)
	}
	if taskNS == "" {
		return netip.Prefix{}, fmt.Errorf("%w: empty network namespace path for task %s", ErrInvalid, taskID)
	}
	same, err := sameNamespace(n.cfg.HostNS, taskNS)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: network namespace %q of task %s cannot be opened: %w", ErrInvalid, taskNS, taskID, err)
	}
	if same {
		return netip.Prefix{}, fmt.Errorf("%w: task %s's namespace %q is the host namespace (host network mode): it needs no bridge attachment", ErrHostNamespace, taskID, taskNS)
	}

	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return netip.Prefix{}, ErrClosed
	}
	cursor := n.alloc.last
	addr, fresh, err := n.alloc.allocate(taskID)
	if err != nil {
		return netip.Prefix{}, err
	}
	if fresh {
		if err := saveState(n.cfg.StateFile, n.alloc); err != nil {
			n.alloc.release(taskID)
			n.alloc.setCursor(cursor)
			return netip.Prefix{}, fmt.Errorf("bridge: attach task %s: %w", taskID, err)
		}
	}
	p := netip.PrefixFrom(addr, n.cfg.Subnet.Bits())
	att := sandbox.Attachment{
		HostNS:  n.cfg.HostNS,
		TaskNS:  taskNS,
		Bridge:  n.cfg.Bridge,
		HostIf:  n.hostIf(taskID),
		IfName:  TaskIfName,
		Addr:    p,
		MAC:     macFor(addr),
		Gateway: n.gw,
		MTU:     n.cfg.MTU,
	}
	err = sandbox.Attach(att)
	if errors.Is(err, sandbox.ErrBridgeNotFound) { // deleted behind our back: make it again
		err = n.ensureBridge()
		if err == nil {
			err = sandbox.Attach(att)
		}
	}
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bridge: attach task %s (%v) in %q to %s: %w", taskID, p, taskNS, n.cfg.Bridge, err)
	}
	return p, nil
}

func (n *Network) ensureBridge() error {
	h, err := openHost(n.cfg.HostNS)
	if err != nil {
		return err
	}
	defer h.close()
	_, err = h.ensureBridge(n.cfg)
	return err
}

// Detach removes task taskID's veth (the kernel removes its end in the
// task's namespace with it) and frees its address. A task that is not
// attached is not an error. It errs with ErrInvalid for an empty taskID
// and ErrState when the state file cannot be written; the address then
// stays allocated and Detach may be called again.
func (n *Network) Detach(taskID string) error {
	if taskID == "" {
		return fmt.Errorf("%w: empty task ID", ErrInvalid)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	if err := sandbox.Detach(n.cfg.HostNS, n.hostIf(taskID)); err != nil {
		return fmt.Errorf("bridge: detach task %s from %s: %w", taskID, n.cfg.Bridge, err)
	}
	addr, ok := n.alloc.release(taskID)
	if !ok {
		return nil
	}
	if err := saveState(n.cfg.StateFile, n.alloc); err != nil {
		_, _ = n.alloc.restore(taskID, addr) // it was free a moment ago
		return fmt.Errorf("bridge: detach task %s: %w", taskID, err)
	}
	return nil
}

// Tasks returns a copy of the allocations, task ID → address, for the
// agent to detach the tasks that no longer run. After Close it is empty.
func (n *Network) Tasks() map[string]netip.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return map[string]netip.Addr{}
	}
	return n.alloc.tasks()
}

// Close releases the Network and leaves the kernel objects and the state
// file as they are, so tasks keep their network while the agent restarts
// and a later Open finds them. Calling it again is a no-op.
func (n *Network) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
	return nil
}

// Remove deletes everything the network made (the veths of its tasks,
// the bridge, the NAT table, the state file) and closes it: for an agent
// shutting down with cleanup. IPv4 forwarding stays on, as other networks
// may need it. It tries every step and returns their errors joined; the
// Network then stays open and Remove may be called again.
func (n *Network) Remove() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	var errs []error
	for _, task := range slices.Sorted(maps.Keys(n.alloc.byTask)) {
		if err := sandbox.Detach(n.cfg.HostNS, n.hostIf(task)); err != nil {
			errs = append(errs, fmt.Errorf("bridge: detach task %s: %w", task, err))
		}
	}
	if h, err := openHost(n.cfg.HostNS); err != nil {
		errs = append(errs, err)
	} else {
		if idx, err := h.findBridge(n.cfg.Bridge); err == nil && idx != 0 {
			ports, err := h.ports(idx)
			errs = append(errs, err)
			for _, p := range ports {
				errs = append(errs, sandbox.Detach(n.cfg.HostNS, p))
			}
		}
		errs = append(errs, h.deleteBridge(n.cfg.Bridge))
		h.close()
	}
	errs = append(errs, removeNAT(n.cfg.HostNS))
	if err := os.Remove(n.cfg.StateFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("%w: remove %s: %w", ErrState, n.cfg.StateFile, err))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	n.closed = true
	return nil
}
