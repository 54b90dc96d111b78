package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Kill powers the host off: SIGKILL to its daemon, containerd, shims and
// containers, and its underlay link down, so that peers see silence
// rather than refused connections.
func (h *Host) Kill() error {
	linkErr := ip("-n", h.lab.underlayNS(), "link", "set", h.port(), "down")
	return errors.Join(linkErr, h.powerOff())
}

// Start powers a killed host back on: link up, containerd, then the
// daemon, which resumes from its data folder. It returns once the daemon
// serves (not once the cluster sees the node READY: see Lab.WaitReady).
func (h *Host) Start(ctx context.Context) error {
	if err := ip("-n", h.lab.underlayNS(), "link", "set", h.port(), "up"); err != nil {
		return err
	}
	if h.lab.Runtime == RuntimeContainerd && !h.containerdProc().Alive() {
		if err := h.startContainerd(ctx); err != nil {
			return err
		}
	}
	if h.DaemonRunning() {
		return nil
	}
	return h.startDaemon(ctx)
}

// StartDaemon starts the host's daemon again after KillDaemon or
// StopDaemonGracefully; it resumes from its data folder.
func (h *Host) StartDaemon(ctx context.Context) error { return h.startDaemon(ctx) }

// KillDaemon sends SIGKILL to the host's daemon only (containerd and the
// containers keep running).
func (h *Host) KillDaemon() error { return h.daemonProc().Terminate(syscall.SIGKILL, 0) }

// StopDaemonGracefully sends SIGTERM to the daemon and waits up to 30 s
// for it to exit (SIGKILL after that).
func (h *Host) StopDaemonGracefully() error {
	return h.daemonProc().Terminate(syscall.SIGTERM, 30*time.Second)
}

// RestartDaemon stops the daemon with SIGTERM and starts it again.
func (h *Host) RestartDaemon(ctx context.Context) error {
	if err := h.StopDaemonGracefully(); err != nil {
		return err
	}
	return h.startDaemon(ctx)
}

// StopDaemon freezes the daemon (SIGSTOP): it keeps its sockets but
// answers nothing, as a hung process would.
func (h *Host) StopDaemon() error { return h.daemonProc().Signal(syscall.SIGSTOP) }

// ContinueDaemon resumes a daemon frozen by StopDaemon (SIGCONT).
func (h *Host) ContinueDaemon() error { return h.daemonProc().Signal(syscall.SIGCONT) }

func (h *Host) daemonProc() Proc     { h.mu.Lock(); defer h.mu.Unlock(); return h.daemon }
func (h *Host) containerdProc() Proc { h.mu.Lock(); defer h.mu.Unlock(); return h.containerd }

// partitionTable is the nftables table Partition adds in the host's
// namespace.
const partitionTable = "lab_partition"

// Partition cuts the host off from the given peers (all other hosts and
// the registry if none are given): nftables rules in the host's namespace
// drop every packet to or from their underlay addresses. A second call
// replaces the first.
func (h *Host) Partition(peers ...*Host) error {
	var addrs []netip.Addr
	if len(peers) == 0 {
		for _, p := range h.lab.Hosts {
			if p != h {
				peers = append(peers, p)
			}
		}
		addrs = append(addrs, h.lab.registryAddr(), h.lab.bridgeAddr())
	}
	for _, p := range peers {
		addrs = append(addrs, netip.MustParseAddr(p.Addr))
	}
	return h.withNFT(func(c *nftables.Conn) error {
		t := &nftables.Table{Name: partitionTable, Family: nftables.TableFamilyIPv4}
		// Delete and add in one batch: the new rules replace the old at
		// once. Deleting a table that does not exist fails the batch, so
		// add it first (a no-op when it exists).
		c.AddTable(t)
		c.DelTable(t)
		t = c.AddTable(t)
		accept := nftables.ChainPolicyAccept
		for _, dir := range []struct {
			hook   *nftables.ChainHook
			offset uint32
		}{{nftables.ChainHookInput, 12}, {nftables.ChainHookOutput, 16}} {
			ch := c.AddChain(&nftables.Chain{
				Name: fmt.Sprintf("drop_%d", dir.offset), Table: t, Type: nftables.ChainTypeFilter,
				Hooknum: dir.hook, Priority: nftables.ChainPriorityFilter, Policy: &accept,
			})
			for _, a := range addrs {
				ip4 := a.As4()
				c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
					&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: dir.offset, Len: 4},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ip4[:]},
					&expr.Verdict{Kind: expr.VerdictDrop},
				}})
			}
		}
		return c.Flush()
	})
}

// Heal removes the rules Partition added.
func (h *Host) Heal() error {
	return h.withNFT(func(c *nftables.Conn) error {
		t := &nftables.Table{Name: partitionTable, Family: nftables.TableFamilyIPv4}
		c.AddTable(t)
		c.DelTable(t)
		return c.Flush()
	})
}

// Partitioned reports whether the host has partition rules.
func (h *Host) Partitioned() (bool, error) {
	var found bool
	err := h.withNFT(func(c *nftables.Conn) error {
		tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
		for _, t := range tables {
			if t.Name == partitionTable {
				found = true
			}
		}
		return err
	})
	return found, err
}

// withNFT runs fn with a netlink connection to nftables inside the host's
// namespace.
func (h *Host) withNFT(fn func(*nftables.Conn) error) error {
	fd, err := unix.Open(filepath.Join(netnsDir, h.NetNS), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("lab: open namespace of %s: %w", h.Name, err)
	}
	defer unix.Close(fd)
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		return fmt.Errorf("lab: nftables in %s: %w", h.Name, err)
	}
	defer c.CloseLasting()
	if err := fn(c); err != nil {
		return fmt.Errorf("lab: nftables in %s: %w", h.Name, err)
	}
	return nil
}
