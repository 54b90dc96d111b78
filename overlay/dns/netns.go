package dns

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netns"

	"github.com/shoalhq/shoal/overlay/nsrun"
	"golang.org/x/sys/unix"
)

// inNetNS runs fn inside the network namespace target (see nsrun):
// sockets fn creates stay there.
func inNetNS(target netns.NsHandle, fn func() error) error {
	if err := nsrun.DoFd(int(target), fn); err != nil {
		if errors.Is(err, nsrun.ErrNamespace) {
			return fmt.Errorf("%w: %v", ErrNamespace, err)
		}
		return err
	}
	return nil
}

// ensureLoopbackUp sets the loopback interface of the calling thread's
// namespace up, as a container's namespace needs and a fresh one lacks
// (127.0.0.11 does not exist until lo is up). Idempotent.
func ensureLoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for ioctl: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("read flags of lo: %w", err)
	}
	flags := ifr.Uint16()
	if flags&unix.IFF_UP != 0 {
		return nil
	}
	ifr.SetUint16(flags | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}

// listenAddr is where the resolver listens in every container.
const listenAddr = "127.0.0.11:53"

// listenIn opens the UDP and TCP sockets on 127.0.0.11:53 inside the
// namespace at nsPath, bringing its loopback up first. It returns the
// namespace's identity (to tell a recreated namespace from the same one).
func listenIn(nsPath string) (pc net.PacketConn, l net.Listener, nsID string, err error) {
	target, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, nil, "", fmt.Errorf("%w: open %s: %v (is the container's namespace still there?)", ErrNamespace, nsPath, err)
	}
	defer target.Close()
	nsID = target.UniqueId()
	err = inNetNS(target, func() error {
		if err := ensureLoopbackUp(); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrNamespace, nsPath, err)
		}
		var lc net.ListenConfig
		ctx := context.Background()
		var err error
		if pc, err = lc.ListenPacket(ctx, "udp4", listenAddr); err != nil {
			return fmt.Errorf("%w: udp in %s: %v (another resolver listening there? detach it first)", ErrListen, nsPath, err)
		}
		if l, err = lc.Listen(ctx, "tcp4", listenAddr); err != nil {
			pc.Close()
			pc = nil
			return fmt.Errorf("%w: tcp in %s: %v (another resolver listening there? detach it first)", ErrListen, nsPath, err)
		}
		return nil
	})
	if err != nil {
		if pc != nil {
			pc.Close()
		}
		if l != nil {
			l.Close()
		}
		return nil, nil, "", err
	}
	return pc, l, nsID, nil
}

// nsDialer opens connections from inside a network namespace.
type nsDialer struct {
	ns netns.NsHandle
}

// DialContext dials network/addr with a socket created in the dialer's
// namespace.
func (d nsDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := inNetNS(d.ns, func() error {
		var dialer net.Dialer
		var err error
		conn, err = dialer.DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}
