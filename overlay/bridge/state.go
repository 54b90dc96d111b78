package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
)

// stateVersion is the version of the state file's format.
const stateVersion = 1

// stateFile is the JSON content of Config.StateFile.
type stateFile struct {
	Version int                   `json:"version"`
	Subnet  netip.Prefix          `json:"subnet"`
	Last    netip.Addr            `json:"last,omitzero"` // the allocator's cursor
	Tasks   map[string]netip.Addr `json:"tasks"`         // task ID → address
}

// loadState fills a fresh allocator of subnet from the file at path; a
// missing file gives an empty one. Allocations outside subnet (the
// subnet was changed) are dropped and returned, so their tasks get a new
// address on their next Attach; a duplicate address or an unreadable file
// is ErrState.
func loadState(path string, subnet netip.Prefix) (*allocator, map[string]netip.Addr, error) {
	a := newAllocator(subnet)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return a, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: read %s: %w", ErrState, path, err)
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, nil, fmt.Errorf("%w: %s is not a bridge state file: %w; repair it or remove it (its tasks lose their addresses)", ErrState, path, err)
	}
	if st.Version != stateVersion {
		return nil, nil, fmt.Errorf("%w: %s has format version %d, this agent reads %d", ErrState, path, st.Version, stateVersion)
	}
	var dropped map[string]netip.Addr
	for task, addr := range st.Tasks {
		outOfRange, err := a.restore(task, addr)
		if outOfRange && st.Subnet != subnet {
			if dropped == nil {
				dropped = map[string]netip.Addr{}
			}
			dropped[task] = addr
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %w; repair it or remove it (its tasks lose their addresses)", ErrState, path, err)
		}
	}
	a.setCursor(st.Last)
	return a, dropped, nil
}

// saveState replaces the file at path with a's allocations atomically: a
// temporary file in the same directory, synced, renamed over path, and
// the directory synced. On error path is unchanged.
func saveState(path string, a *allocator) (err error) {
	data, err := json.MarshalIndent(stateFile{
		Version: stateVersion, Subnet: a.subnet, Last: a.last, Tasks: a.byTask,
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("%w: encode: %w", ErrState, err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("%w: create a temporary file beside %s: %w", ErrState, path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("%w: write %s: %w", ErrState, tmp.Name(), err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("%w: sync %s: %w", ErrState, tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("%w: close %s: %w", ErrState, tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("%w: replace %s: %w", ErrState, path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync() // the rename is done; a failed directory sync only weakens durability
		_ = d.Close()
	}
	return nil
}
