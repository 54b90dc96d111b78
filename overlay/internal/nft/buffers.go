package nft

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// netlinkBuffer is the socket buffer size, in bytes, forced on the netlink
// socket of a Session. A batch carries one message per chain, rule, set
// and element batch, and the kernel acknowledges each one. Measured with
// the default buffers (overlay/vip): 10 services of 10 backends already
// overflow the receive buffer (ENOBUFS, although the kernel committed the
// batch), and 30 of 30 no longer fit the send buffer (EMSGSIZE). 16 MiB
// carries 100 services of 50 backends.
const netlinkBuffer = 16 << 20

// rawConner is what forceBuffers needs of the netlink connection.
// Declared as a type parameter constraint so that this package does not
// import the netlink library: nftables.WithSockOptions infers the type.
type rawConner interface {
	SyscallConn() (syscall.RawConn, error)
}

// forceBuffers raises both socket buffers of the netlink connection to
// netlinkBuffer, past net.core.rmem_max (SO_RCVBUFFORCE and
// SO_SNDBUFFORCE need CAP_NET_ADMIN), so that large batches are sent and
// acknowledged in full.
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
