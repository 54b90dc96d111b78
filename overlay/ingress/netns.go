package ingress

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/shoalhq/shoal/overlay/nsrun"
)

// netlinkBuffer is the socket buffer size, in bytes, forced on the
// nftables netlink socket. A batch carries one message per chain, rule
// and map, and the kernel acknowledges each one; with the default buffers
// a large batch overflows (ENOBUFS although the kernel committed it, or
// EMSGSIZE). Measured in overlay/vip: 16 MiB carries far more than a host
// publishes.
const netlinkBuffer = 16 << 20

// session is an nftables connection bound to one network namespace.
type session struct {
	conn *nftables.Conn
	fd   int
}

// checkNS opens nsPath and checks that it is a network namespace. The
// caller closes the descriptor.
func checkNS(nsPath, field string) (int, error) {
	if nsPath == "" {
		return -1, fmt.Errorf("ingress: %s is empty: %w", field, ErrNamespace)
	}
	fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("ingress: open %s %s: %w: %w", field, nsPath, ErrNamespace, err)
	}
	kind, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil || kind != unix.CLONE_NEWNET {
		_ = unix.Close(fd)
		return -1, fmt.Errorf("ingress: %s %s is not a network namespace: %w", field, nsPath, ErrNamespace)
	}
	return fd, nil
}

// openNft returns a lasting nftables connection inside nsPath. The caller
// must call close.
func openNft(nsPath, field string) (*session, error) {
	fd, err := checkNS(nsPath, field)
	if err != nil {
		return nil, err
	}
	conn, err := nftables.New(nftables.WithNetNSFd(fd), nftables.AsLasting(),
		nftables.WithSockOptions(forceBuffers))
	if err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("ingress: nftables connection in %s: %w: %w", nsPath, ErrNamespace, err)
	}
	return &session{conn: conn, fd: fd}, nil
}

// close releases the connection and the namespace file in the background:
// releasing a netfilter netlink socket waits for an RCU grace period
// (5-15 ms measured in overlay/vip) that no caller needs to wait for.
func (s *session) close() {
	go func() {
		_ = s.conn.CloseLasting()
		_ = unix.Close(s.fd)
	}()
}

// rawConner is what forceBuffers needs of the netlink connection, as a
// type parameter constraint so that nftables.WithSockOptions infers it.
type rawConner interface {
	SyscallConn() (syscall.RawConn, error)
}

// forceBuffers raises both socket buffers of the netlink connection to
// netlinkBuffer, past net.core.rmem_max (we run as root).
func forceBuffers[C rawConner](c C) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = errors.Join(
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, netlinkBuffer),
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, netlinkBuffer))
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("set netlink socket buffers: %w", serr)
	}
	return nil
}

// openLink returns a netlink (rtnetlink) handle inside nsPath. It never
// moves the calling thread. The caller closes it.
func openLink(nsPath, field string) (*netlink.Handle, error) {
	fd, err := checkNS(nsPath, field)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	h, err := netlink.NewHandleAt(netns.NsHandle(fd))
	if err != nil {
		return nil, fmt.Errorf("ingress: netlink handle in %s: %w: %w", nsPath, ErrNamespace, err)
	}
	return h, nil
}

// ensureSysctl makes the sysctl file (a path under /proc/sys/net) hold
// value inside the namespace nsPath; it writes only when the value
// differs. /proc/sys/net is resolved in the namespace of the thread that
// opens it, hence nsrun.
func ensureSysctl(nsPath, file, value string) error {
	err := nsrun.Do(nsPath, func() error {
		have, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		if string(bytes.TrimSpace(have)) == value {
			return nil
		}
		return os.WriteFile(file, []byte(value+"\n"), 0o644)
	})
	if errors.Is(err, nsrun.ErrNamespace) {
		return fmt.Errorf("ingress: set %s=%s in %s: %w: %w", file, value, nsPath, ErrNamespace, err)
	}
	if err != nil {
		return fmt.Errorf("ingress: set %s=%s in %s: %w", file, value, nsPath, err)
	}
	return nil
}

// nsLocks serialises the calls of this package per namespace path within
// this process, so that no caller interleaves its reads of the kernel
// state with another's changes.
var nsLocks = keyedMutex{held: map[string]*refMutex{}}

type refMutex struct {
	sync.Mutex
	refs int
}

// keyedMutex is a set of mutexes by key that forgets unused keys.
type keyedMutex struct {
	mu   sync.Mutex
	held map[string]*refMutex
}

// lock locks key and returns the function that unlocks it.
func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	m := k.held[key]
	if m == nil {
		m = &refMutex{}
		k.held[key] = m
	}
	m.refs++
	k.mu.Unlock()

	m.Lock()
	return func() {
		m.Unlock()
		k.mu.Lock()
		m.refs--
		if m.refs == 0 {
			delete(k.held, key)
		}
		k.mu.Unlock()
	}
}
