package containerd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ErrVolumeNotFound is wrapped by RemoveVolume's error when the volume
// does not exist on this node.
var ErrVolumeNotFound = errors.New("no such volume")

// ErrVolumeInUse is wrapped by RemoveVolume's error when a container of
// the executor's namespace mounts the volume and force is not set.
var ErrVolumeInUse = errors.New("volume is in use")

// Volume is a named volume of the executor: a folder under
// StateDir/volumes.
type Volume struct {
	// Name is the volume's name, as task mounts give it.
	Name string
	// Path is its folder on this node.
	Path string
	// SizeBytes is the total size of the regular files in it.
	SizeBytes int64
	// TaskIDs are the containers (task IDs) of the executor's namespace
	// whose spec mounts it, sorted.
	TaskIDs []string
}

// ListVolumes returns the executor's named volumes, sorted by name, with
// their sizes and the tasks (containers in the namespace, running or
// not) that mount them. A daemon that does not answer wraps
// runtime.ErrTemporary.
func (e *Executor) ListVolumes(ctx context.Context) ([]Volume, error) {
	ents, err := os.ReadDir(volumesDir(e.cfg.StateDir))
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	users, err := e.volumeUsers(ctx)
	if err != nil {
		return nil, err
	}
	out := []Volume{}
	for _, ent := range ents {
		if !ent.IsDir() {
			continue
		}
		dir := filepath.Join(volumesDir(e.cfg.StateDir), ent.Name())
		out = append(out, Volume{Name: ent.Name(), Path: dir, SizeBytes: dirSize(dir), TaskIDs: users[dir]})
	}
	return out, nil
}

// RemoveVolume deletes the named volume and its content. It fails
// wrapping ErrVolumeNotFound when there is no such volume, and wrapping
// ErrVolumeInUse (naming the tasks) when a container mounts it, unless
// force: then the folder is removed anyway and the containers keep an
// empty, deleted mount.
func (e *Executor) RemoveVolume(ctx context.Context, name string, force bool) error {
	if !volumeName.MatchString(name) {
		return fmt.Errorf("invalid volume name %q: %w", name, ErrVolumeNotFound)
	}
	dir := filepath.Join(volumesDir(e.cfg.StateDir), name)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("volume %s: %w on this node", name, ErrVolumeNotFound)
	}
	if !force {
		users, err := e.volumeUsers(ctx)
		if err != nil {
			return err
		}
		if ids := users[dir]; len(ids) > 0 {
			return fmt.Errorf("volume %s: %w by task %s (remove the tasks first, or force)", name, ErrVolumeInUse, strings.Join(ids, ", "))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	e.log.Info("removed volume", "volume", name, "force", force)
	return nil
}

// volumeUsers maps each volume folder to the sorted IDs of the
// namespace's containers whose OCI spec bind-mounts it.
func (e *Executor) volumeUsers(ctx context.Context) (map[string][]string, error) {
	ctrs, err := e.client.Containers(ctx)
	if err != nil {
		return nil, classify(err, "list containers")
	}
	prefix := volumesDir(e.cfg.StateDir) + string(filepath.Separator)
	users := map[string][]string{}
	for _, c := range ctrs {
		spec, err := c.Spec(ctx)
		if err != nil {
			continue // removed meanwhile, or no spec: mounts nothing
		}
		for _, m := range spec.Mounts {
			if strings.HasPrefix(m.Source, prefix) && !slices.Contains(users[m.Source], c.ID()) {
				users[m.Source] = append(users[m.Source], c.ID())
			}
		}
	}
	for _, ids := range users {
		slices.Sort(ids)
	}
	return users, nil
}

// dirSize is the total size of the regular files under dir; files it
// cannot read count as 0.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
