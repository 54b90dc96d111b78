package gossip

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/hashicorp/memberlist"
)

// KeySize is the length of a gossip key in bytes: memberlist encrypts
// with AES-256-GCM.
const KeySize = 32

// validateKeys checks a key list for Config.Keys or SetKeys and returns a
// copy the caller cannot change under the table. Its errors wrap
// ErrInvalidKeys and name keys by position only.
func validateKeys(keys [][]byte) ([][]byte, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: none given: pass the cluster's gossip keys from the managers (%d bytes each, AES-256), the primary first", ErrInvalidKeys, KeySize)
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("%w: key %d is %d bytes: each key must be exactly %d bytes (AES-256); pass the raw key the managers generated, not an encoding of it", ErrInvalidKeys, i, len(k), KeySize)
		}
		for j := range i {
			if bytes.Equal(keys[j], k) {
				return nil, fmt.Errorf("%w: keys %d and %d are the same: list each key once, the primary first", ErrInvalidKeys, j, i)
			}
		}
		out[i] = bytes.Clone(k)
	}
	return out, nil
}

// newKeyring returns memberlist's keyring holding keys (validated), in
// their order: keys[0] primary.
func newKeyring(keys [][]byte) (*memberlist.Keyring, error) {
	kr, err := memberlist.NewKeyring(keys[1:], keys[0])
	if err != nil {
		// Unreachable for validated keys.
		return nil, fmt.Errorf("%w: %v", ErrInvalidKeys, err)
	}
	return kr, nil
}

// SetKeys makes the table's keyring exactly keys: keys[0] becomes the
// primary, which encrypts everything sent from the moment SetKeys
// returns, and every listed key decrypts. It errs with ErrInvalidKeys,
// like Start, and changes nothing then. Setting the keys already
// installed (same primary, same set) is a no-op. SetKeys copies keys, is
// safe to call while gossip runs and concurrently with itself, and also
// works (harmlessly) after Leave and Shutdown.
//
// A node can only talk with peers holding the primary it encrypts with,
// and only hear peers whose primary it holds: change keys across the
// cluster in the steps the package documentation describes
// (install, use, remove), each on every node before the next.
func (t *Table) SetKeys(keys [][]byte) error {
	want, err := validateKeys(keys)
	if err != nil {
		return err
	}
	t.keysMu.Lock()
	defer t.keysMu.Unlock()
	kr := t.keyring
	have := kr.GetKeys()
	if bytes.Equal(have[0], want[0]) && sameKeySet(have, want) {
		return nil
	}
	// Add first, then switch the primary, then remove: the new primary
	// is in the ring before it encrypts, and memberlist refuses to remove
	// its primary, so the old one must be demoted first.
	for _, k := range want {
		if err := kr.AddKey(k); err != nil { // a no-op for a key it holds
			return fmt.Errorf("%w: %v", ErrInvalidKeys, err) // unreachable: validated
		}
	}
	if !bytes.Equal(kr.GetPrimaryKey(), want[0]) {
		if err := kr.UseKey(want[0]); err != nil {
			return fmt.Errorf("gossip: switch primary key: %v", err) // unreachable: added above
		}
	}
	removeStaleKeys(kr, want)
	t.log.Info("gossip keys changed", "keys", len(want), "primary", keyID(want[0]))
	return nil
}

// removeStaleKeys removes from kr every key not in want; want[0] is
// kr's primary.
//
// memberlist's RemoveKey shifts the keys behind the removed one within
// the ring's backing array, which its receive path may be reading at that
// moment without a lock (GetKeys hands the array out): a data race.
// Removing the last key shifts nothing. So keys are only ever removed
// from the end: when a kept key sits behind a stale one, it is taken off
// and put back (AddKey appends into a fresh array), and is missing from
// the ring for the few microseconds that takes; a packet arriving under
// it then is dropped, as if lost. The steps of the rotation protocol
// never need that: the old key they remove is always the last.
func removeStaleKeys(kr *memberlist.Keyring, want [][]byte) {
	ring := slices.Clone(kr.GetKeys())
	first := slices.IndexFunc(ring, func(k []byte) bool { return !containsKey(want, k) })
	if first < 0 {
		return
	}
	var putBack [][]byte
	for i := len(ring) - 1; i >= first; i-- {
		// The primary (index 0) is in want, so first >= 1.
		_ = kr.RemoveKey(ring[i]) // errs only for the primary
		if containsKey(want, ring[i]) {
			putBack = append(putBack, ring[i])
		}
	}
	for _, k := range slices.Backward(putBack) {
		_ = kr.AddKey(k) // validated when installed
	}
}

// Keys returns the keys installed, primary first, then the others in the
// order memberlist tries them; copies the caller owns.
func (t *Table) Keys() [][]byte {
	t.keysMu.Lock()
	defer t.keysMu.Unlock()
	ring := t.keyring.GetKeys()
	out := make([][]byte, len(ring))
	for i, k := range ring {
		out[i] = bytes.Clone(k)
	}
	return out
}

// sameKeySet reports whether a and b hold the same keys, in any order;
// neither lists a key twice.
func sameKeySet(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for _, k := range a {
		if !containsKey(b, k) {
			return false
		}
	}
	return true
}

func containsKey(keys [][]byte, k []byte) bool {
	return slices.ContainsFunc(keys, func(x []byte) bool { return bytes.Equal(x, k) })
}

// keyID names a key in logs without revealing it: the first 4 bytes of
// its SHA-256, in hex. Nodes logging the same keyID use the same key.
func keyID(k []byte) string {
	sum := sha256.Sum256(k)
	return hex.EncodeToString(sum[:4])
}
