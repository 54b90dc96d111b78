package nft

import (
	"fmt"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Session is a lasting nftables connection bound to one network
// namespace. Every request and batch of Conn goes to that namespace.
type Session struct {
	// Conn is the connection. Use it until Close; never call its own
	// close methods.
	Conn *nftables.Conn
	fd   int
}

// Open opens the network namespace at path (see OpenNS) and returns a
// lasting nftables connection inside it, whose socket buffers are forced
// to a size that carries batches of thousands of messages and their
// acknowledgements. The caller must call Close.
//
// Every error means the namespace cannot be used: ErrEmptyPath,
// ErrNotNetNS, the error of open(2), or the failure to open the netlink
// socket inside the namespace or to size its buffers (wrapped).
func Open(path string) (*Session, error) {
	fd, err := OpenNS(path)
	if err != nil {
		return nil, err
	}
	conn, err := nftables.New(nftables.WithNetNSFd(fd), nftables.AsLasting(),
		nftables.WithSockOptions(forceBuffers))
	if err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("nftables connection in %s: %w", path, err)
	}
	return &Session{Conn: conn, fd: fd}, nil
}

// Close releases the connection and the namespace file, in the
// background: when a netfilter netlink socket is released the kernel first
// finishes freeing what past transactions replaced (it waits for an RCU
// grace period, 5-15 ms measured here), and no caller needs to wait for
// that. A later commit in the same namespace still waits for it. Close
// returns at once; call it once.
func (s *Session) Close() {
	go func() {
		_ = s.Conn.CloseLasting()
		_ = unix.Close(s.fd)
	}()
}
