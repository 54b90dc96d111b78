package vip

import (
	"errors"
	"fmt"
	"sync"
	"syscall"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// ErrNamespace is returned (wrapped) when nsPath cannot be opened or is not
// a network namespace: the container is gone, or the caller passed the
// wrong path (use /run/netns/NAME or /proc/PID/ns/net).
var ErrNamespace = errors.New("cannot open the network namespace")

// netlinkBuffer is the socket buffer size, in bytes, forced on the netlink
// socket of a connection. A batch carries one message per chain, rule and
// set, and the kernel acknowledges each one. Measured with the default
// buffers: 10 services of 10 backends already overflow the receive buffer
// (ENOBUFS, although the kernel committed the batch), and 30 of 30 no
// longer fit the send buffer (EMSGSIZE). 16 MiB carries 100 services of
// 50 backends.
const netlinkBuffer = 16 << 20

// session is an nftables connection bound to one network namespace.
type session struct {
	conn *nftables.Conn
	fd   int
	path string
}

// open opens nsPath and returns a lasting nftables connection inside it.
// The caller must call close.
func open(nsPath string) (*session, error) {
	if nsPath == "" {
		return nil, fmt.Errorf("vip: empty namespace path: %w", ErrNamespace)
	}
	fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("vip: open %s: %w: %w", nsPath, ErrNamespace, err)
	}
	kind, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil || kind != unix.CLONE_NEWNET {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("vip: %s is not a network namespace: %w", nsPath, ErrNamespace)
	}
	conn, err := nftables.New(nftables.WithNetNSFd(fd), nftables.AsLasting(),
		nftables.WithSockOptions(forceBuffers))
	if err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("vip: netlink connection in %s: %w: %w", nsPath, ErrNamespace, err)
	}
	return &session{conn: conn, fd: fd, path: nsPath}, nil
}

// close releases the connection and the namespace file, in the
// background: when a netfilter netlink socket is released the kernel first
// finishes freeing what past transactions replaced (it waits for an RCU
// grace period, 5-15 ms measured here), and no caller needs to wait for
// that. A later commit in the same namespace still waits for it.
func (s *session) close() {
	go func() {
		_ = s.conn.CloseLasting()
		_ = unix.Close(s.fd)
	}()
}

// rawConner is what forceBuffers needs of the netlink connection.
// Declared as a type parameter constraint so that this package does not
// import the netlink library: nftables.WithSockOptions infers the type.
type rawConner interface {
	SyscallConn() (syscall.RawConn, error)
}

// forceBuffers raises both socket buffers of the netlink connection to
// netlinkBuffer, past net.core.rmem_max (we run as root), so that large
// batches are acknowledged in full.
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

// nsLocks serialises Apply, Read and Remove per namespace path within
// this process, so that no caller interleaves its reads of the table with
// another's batch.
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
