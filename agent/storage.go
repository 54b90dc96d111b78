package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// WorkerDBName is the file in Config.StateDir that holds the agent's
// persisted assignments.
const WorkerDBName = "worker.db"

// ErrStateLocked means another agent has the state directory's worker.db
// open: run one agent per state directory.
var ErrStateLocked = errors.New("worker.db is in use by another agent")

// taskDB keeps the node's assignments and the last status the agent
// observed of each task, so that a restarted agent resumes them. Writes
// are durable when they return.
type taskDB interface {
	// load returns every persisted task with its last observed status
	// (nil when none was recorded).
	load() ([]persistedTask, error)
	putTasks(tasks []*api.Task) error
	putStatus(id string, st *api.TaskStatus) error
	// remove forgets a task and its status.
	remove(id string) error
	close() error
}

type persistedTask struct {
	task   *api.Task
	status *api.TaskStatus
}

// openTaskDB opens StateDir/worker.db, or a store that keeps nothing when
// dir is empty.
func openTaskDB(dir string) (taskDB, error) {
	if dir == "" {
		return memDB{}, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("agent state: %w", err)
	}
	path := filepath.Join(dir, WorkerDBName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open %s: %w", path, ErrStateLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketTasks, bucketStatus} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return boltDB{db}, nil
}

// Buckets of worker.db: task ID → marshalled api.Task, and task ID →
// marshalled api.TaskStatus.
var (
	bucketTasks  = []byte("tasks")
	bucketStatus = []byte("status")
)

// boltDB is the taskDB in worker.db.
type boltDB struct{ db *bolt.DB }

func (b boltDB) load() ([]persistedTask, error) {
	var out []persistedTask
	err := b.db.View(func(tx *bolt.Tx) error {
		statuses := tx.Bucket(bucketStatus)
		return tx.Bucket(bucketTasks).ForEach(func(k, v []byte) error {
			p := persistedTask{task: &api.Task{}}
			if err := proto.Unmarshal(v, p.task); err != nil {
				return fmt.Errorf("task %s: %w", k, err)
			}
			if sv := statuses.Get(k); sv != nil {
				p.status = &api.TaskStatus{}
				if err := proto.Unmarshal(sv, p.status); err != nil {
					return fmt.Errorf("status of task %s: %w", k, err)
				}
			}
			out = append(out, p)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", b.db.Path(), err)
	}
	return out, nil
}

func (b boltDB) putTasks(tasks []*api.Task) error {
	if len(tasks) == 0 {
		return nil
	}
	vals := make([][]byte, len(tasks))
	for i, t := range tasks {
		v, err := proto.Marshal(t)
		if err != nil {
			return err
		}
		vals[i] = v
	}
	return b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketTasks)
		for i, t := range tasks {
			if err := bk.Put([]byte(t.GetId()), vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// putStatus batches with concurrent calls (bolt.DB.Batch): many tasks
// changing at once share a disk sync.
func (b boltDB) putStatus(id string, st *api.TaskStatus) error {
	v, err := proto.Marshal(st)
	if err != nil {
		return err
	}
	return b.db.Batch(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketTasks).Get([]byte(id)) == nil {
			return nil // forgotten meanwhile
		}
		return tx.Bucket(bucketStatus).Put([]byte(id), v)
	})
}

func (b boltDB) remove(id string) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketTasks).Delete([]byte(id)); err != nil {
			return err
		}
		return tx.Bucket(bucketStatus).Delete([]byte(id))
	})
}

func (b boltDB) close() error { return b.db.Close() }

// memDB keeps nothing: an agent without a state directory.
type memDB struct{}

func (memDB) load() ([]persistedTask, error)          { return nil, nil }
func (memDB) putTasks([]*api.Task) error              { return nil }
func (memDB) putStatus(string, *api.TaskStatus) error { return nil }
func (memDB) remove(string) error                     { return nil }
func (memDB) close() error                            { return nil }
