package ingress

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/shoalhq/shoal/overlay/internal/nft"
	"github.com/shoalhq/shoal/overlay/internal/nslock"
	"github.com/shoalhq/shoal/overlay/nsrun"
)

// openNS opens nsPath and checks that it is a network namespace
// (nft.OpenNS); field names the argument in errors. The caller closes the
// descriptor. It errs with ErrNamespace (wrapped).
func openNS(nsPath, field string) (int, error) {
	fd, err := nft.OpenNS(nsPath)
	if err != nil {
		return -1, fmt.Errorf("ingress: %s: %w: %w", field, ErrNamespace, err)
	}
	return fd, nil
}

// openNft returns a lasting nftables session inside nsPath (nft.Open);
// field names the argument in errors. The caller must call Close. It errs
// with ErrNamespace (wrapped).
func openNft(nsPath, field string) (*nft.Session, error) {
	s, err := nft.Open(nsPath)
	if err != nil {
		return nil, fmt.Errorf("ingress: %s: %w: %w", field, ErrNamespace, err)
	}
	return s, nil
}

// openLink returns a netlink (rtnetlink) handle inside nsPath. It never
// moves the calling thread. The caller closes it.
func openLink(nsPath, field string) (*netlink.Handle, error) {
	fd, err := openNS(nsPath, field)
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
var nsLocks nslock.Locks
