package vip

import (
	"errors"
	"fmt"

	"github.com/shoalhq/shoal/overlay/internal/nft"
	"github.com/shoalhq/shoal/overlay/internal/nslock"
)

// ErrNamespace is returned (wrapped) when nsPath cannot be opened or is not
// a network namespace: the container is gone, or the caller passed the
// wrong path (use /run/netns/NAME or /proc/PID/ns/net).
var ErrNamespace = errors.New("cannot open the network namespace")

// nsLocks serialises Apply, Read and Remove per namespace path within
// this process, so that no caller interleaves its reads of the table with
// another's batch.
var nsLocks nslock.Locks

// open returns a lasting nftables session inside the namespace at nsPath
// (nft.Open). The caller must call Close. It errs with ErrNamespace
// (wrapped) if nsPath cannot be used.
func open(nsPath string) (*nft.Session, error) {
	s, err := nft.Open(nsPath)
	if err != nil {
		return nil, fmt.Errorf("vip: %w: %w", ErrNamespace, err)
	}
	return s, nil
}
