package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SetOwner makes the calling process the owner of labs built with cfg:
// Sweep tears them down once this process has exited.
func (c *Config) SetOwner() error {
	start, _, err := startTime(os.Getpid())
	if err != nil {
		return err
	}
	c.Owner, c.OwnerStart = os.Getpid(), start
	return nil
}

// ownerGone reports whether the lab has an owner that no longer runs.
func (c Config) ownerGone() bool {
	if c.Owner == 0 {
		return false
	}
	return !Proc{PID: c.Owner, Start: c.OwnerStart}.Alive()
}

// Sweep tears down the labs under base (each in base/NAME, described by
// base/NAME/NAME.json) whose owner process has exited, and the network
// namespaces named prefix… that belong to no described lab. It returns
// the names of the labs it removed.
func Sweep(base, prefix string) ([]string, error) {
	descs, _ := filepath.Glob(filepath.Join(base, "*", "*.json"))
	live := map[string]bool{}
	var removed []string
	var errs []error
	for _, d := range descs {
		dir := filepath.Dir(d)
		name := strings.TrimSuffix(filepath.Base(d), ".json")
		if filepath.Base(dir) != name {
			continue
		}
		l, err := Open(dir, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !l.ownerGone() {
			live[name] = true
			continue
		}
		if err := l.Down(); err != nil {
			errs = append(errs, fmt.Errorf("lab %s: %w", name, err))
		}
		removed = append(removed, name)
	}
	if prefix != "" {
		for _, ns := range namespacesWithPrefix(prefix) {
			name, _, _ := strings.Cut(ns, "-")
			if live[name] {
				continue
			}
			// A namespace of a lab that crashed before its description
			// was written: no process of it can be found by PID, but
			// its containerd namespace names its shims and cgroups.
			(&Host{NetNS: ns, Dir: filepath.Join(base, name, "unknown")}).powerOff()
			if err := delNS(ns); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return removed, errors.Join(errs...)
}
