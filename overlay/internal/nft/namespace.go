package nft

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrEmptyPath is returned (wrapped) by OpenNS and Open when the
// namespace path is empty.
var ErrEmptyPath = errors.New("the namespace path is empty; use /run/netns/NAME or /proc/PID/ns/net")

// ErrNotNetNS is returned (wrapped) by OpenNS and Open when the path
// exists but is not a network namespace (another kind of namespace, or an
// ordinary file).
var ErrNotNetNS = errors.New("not a network namespace")

// OpenNS opens the namespace file at path (/run/netns/NAME or
// /proc/PID/ns/net) and checks that it is a network namespace. It returns
// the open descriptor, which the caller closes. It errs with ErrEmptyPath,
// with ErrNotNetNS, or with the error of open(2) (the namespace is gone,
// or the path is wrong); no descriptor is left open then.
func OpenNS(path string) (int, error) {
	if path == "" {
		return -1, ErrEmptyPath
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", path, err)
	}
	kind, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil || kind != unix.CLONE_NEWNET {
		_ = unix.Close(fd)
		return -1, fmt.Errorf("%s: %w", path, ErrNotNetNS)
	}
	return fd, nil
}
