package vip

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/google/nftables"

	"github.com/shoalhq/shoal/overlay/internal/nft"
)

// Apply makes services the whole VIP state of the network namespace at
// nsPath (/run/netns/NAME or /proc/PID/ns/net), in one atomic nftables
// batch: connections see the previous rules or the new ones, never a mix.
//
// It replaces whatever the table held before (a previous Apply, leftovers
// of a crashed agent): services absent from the list lose their chains in
// the same batch. Applying the same list again converges to the same
// rules. An empty list leaves an empty table (use Remove to delete it).
// Existing connections keep their backend until they end, even when that
// backend is removed.
//
// Apply validates services first and changes nothing if they are invalid
// (ErrInvalidVIP, ErrInvalidBackend, ErrDuplicateVIP, ErrDuplicateBackend,
// ErrVIPIsBackend, wrapped with the offending field). It returns an error
// wrapping ErrNamespace if nsPath cannot be used; any other error comes
// from the kernel: then the batch was not applied and the previous state
// holds, except when the error wraps syscall.ENOBUFS (acknowledgements
// lost): the batch may have been applied, and calling Apply again settles
// it. Calls for the same nsPath are serialised within a process.
func Apply(nsPath string, services []Service) error {
	if err := validate(services); err != nil {
		return err
	}
	services = normalize(services)

	unlock := nsLocks.Lock(nsPath)
	defer unlock()
	s, err := open(nsPath)
	if err != nil {
		return err
	}
	defer s.Close()

	existing, err := tableChains(s.Conn)
	if err != nil {
		return fmt.Errorf("vip: list chains of table %s in %s: %w", TableName, nsPath, err)
	}
	if err := program(s.Conn, services, existing); err != nil {
		return fmt.Errorf("vip: build batch for %s: %w", nsPath, err)
	}
	if err := s.Conn.Flush(); err != nil {
		if errors.Is(err, syscall.ENOBUFS) {
			return fmt.Errorf("vip: program table %s in %s: acknowledgements lost, the batch may or may not be applied; Apply again: %w", TableName, nsPath, err)
		}
		return fmt.Errorf("vip: program table %s in %s (nothing changed): %w", TableName, nsPath, err)
	}
	return nil
}

// Remove deletes the VIP table of the namespace at nsPath with all its
// rules. Removing a table that does not exist succeeds. It is meant for
// teardown (the container leaves every network or is gone) and makes no
// promise about connections still open through a VIP. It returns an error
// wrapping ErrNamespace if nsPath cannot be used.
func Remove(nsPath string) error {
	unlock := nsLocks.Lock(nsPath)
	defer unlock()
	s, err := open(nsPath)
	if err != nil {
		return err
	}
	defer s.Close()

	if err := nft.DeleteTable(s.Conn, table); err != nil {
		return fmt.Errorf("vip: delete table %s in %s: %w", TableName, nsPath, err)
	}
	return nil
}

// tableChains lists the chains of the VIP table; none if it is absent.
func tableChains(conn *nftables.Conn) ([]*nftables.Chain, error) {
	return nft.TableChains(conn, table)
}
