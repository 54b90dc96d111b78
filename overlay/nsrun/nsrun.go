// Package nsrun runs a function inside another network namespace without
// moving any other goroutine: the function runs on a fresh goroutine
// locked to its OS thread, which enters the namespace and comes back.
// Sockets the function creates belong to that namespace for their whole
// life, wherever they are used afterwards: this is how one process (the
// agent) listens and dials inside many containers.
package nsrun

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// ErrNamespace wraps the failures to open, enter or leave a namespace.
var ErrNamespace = errors.New("network namespace")

// Do runs fn inside the network namespace whose file is path (a bind
// mount such as /run/netns/NAME, or /proc/PID/ns/net) and returns its
// error.
func Do(path string, fn func() error) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: open %s: %v", ErrNamespace, path, err)
	}
	defer unix.Close(fd)
	return DoFd(fd, fn)
}

// DoFd is Do with an open namespace file descriptor.
func DoFd(fd int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("%w: open the thread's own: %v", ErrNamespace, err)
			return
		}
		defer unix.Close(self)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("%w: enter: %v", ErrNamespace, err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
			// The thread stays locked: Go ends it with this goroutine,
			// so no other code ever runs in the wrong namespace.
			errc <- errors.Join(fnErr, fmt.Errorf("%w: leave: %v", ErrNamespace, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}
