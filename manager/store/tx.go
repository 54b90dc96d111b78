package store

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// errReadOnly is returned by a write on the ReadTx of View (reached by a
// type assertion to Tx).
var errReadOnly = errors.New("store: write in a read-only View transaction; use Update")

// txn implements ReadTx for View and Tx for Update. Reads see the state
// plus the writes staged so far; writes are checked against that view,
// stamped and staged as actions of one command.
type txn struct {
	readonly bool
	done     bool
	// now stamps Meta.CreatedAt and UpdatedAt of the writes.
	now     int64
	actions []*api.StoreAction
	ov      overlays
}

func newTxn(st *state, readonly bool, now int64) *txn {
	tx := &txn{readonly: readonly, now: now}
	tx.ov.init(st)
	return tx
}

// live panics when the transaction is used after its View or Update
// returned: the store lock no longer protects it.
func (tx *txn) live() {
	if tx.done {
		panic("store: transaction used after its View or Update returned")
	}
}

func (tx *txn) writable() error {
	tx.live()
	if tx.readonly {
		return errReadOnly
	}
	return nil
}

// add appends an action and returns its position.
func (tx *txn) add(a *api.StoreAction) int {
	tx.actions = append(tx.actions, a)
	return len(tx.actions) - 1
}

// txCreate checks obj against the visible state and stages a clone of it,
// stamped with the transaction's time and version 0.
func txCreate[T object](tx *txn, o *overlay[T], obj T) error {
	if err := tx.writable(); err != nil {
		return err
	}
	if err := o.checkCreate(obj); err != nil {
		return err
	}
	d := o.t.desc
	c := proto.Clone(obj).(T)
	d.setMeta(c, &api.Meta{CreatedAt: tx.now, UpdatedAt: tx.now})
	s := o.put(c)
	s.last = tx.add(d.action(api.StoreAction_KIND_CREATE, c))
	return nil
}

// txUpdate checks obj against the visible state and stages a clone of it,
// keeping the version and creation time of the visible object and stamping
// the update time.
//
// A second write to an object already created or updated in the
// transaction replaces that staged action when the object keeps its unique
// name (the command then carries the object once). A rename is staged as
// an action of its own after the earlier one, so that a name freed by an
// action in between is free when Apply reaches it; Apply checks it against
// the version the earlier action carries.
func txUpdate[T object](tx *txn, o *overlay[T], obj T) error {
	if err := tx.writable(); err != nil {
		return err
	}
	cur, err := o.checkUpdate(obj)
	if err != nil {
		return err
	}
	d := o.t.desc
	c := proto.Clone(obj).(T)
	d.setMeta(c, &api.Meta{Version: version(cur), CreatedAt: cur.GetMeta().GetCreatedAt(), UpdatedAt: tx.now})
	prev := o.staged[obj.GetId()]
	// cur is visible, so a staged record's last action is its create or
	// update.
	replace := prev != nil && prev.last >= 0 && (d.uniqueName == nil || d.uniqueName(cur) == d.uniqueName(c))
	s := o.put(c)
	if replace {
		tx.actions[s.last] = d.action(tx.actions[s.last].GetKind(), c)
		return nil
	}
	s.last = tx.add(d.action(api.StoreAction_KIND_UPDATE, c))
	return nil
}

// txDelete stages the removal of the visible object with the ID, carrying
// its version.
func txDelete[T object](tx *txn, o *overlay[T], id string) error {
	if err := tx.writable(); err != nil {
		return err
	}
	d := o.t.desc
	if id == "" {
		return fmt.Errorf("%w: removal of a %s with no ID", ErrInvalidObject, d.name)
	}
	cur, ok := o.get(id)
	if !ok {
		return fmt.Errorf("%w: removal of %s %s", ErrNotFound, d.name, id)
	}
	s := o.del(id)
	s.last = tx.add(d.action(api.StoreAction_KIND_REMOVE, d.skeleton(id, &api.Meta{Version: version(cur)})))
	return nil
}

// finish ends the transaction.
func (tx *txn) finish() { tx.done = true }

// GetCluster implements ReadTx.
func (tx *txn) GetCluster(id string) *api.Cluster {
	tx.live()
	c, _ := tx.ov.clusters.get(id)
	return c
}

// FindClusters implements ReadTx.
func (tx *txn) FindClusters(by By) []*api.Cluster { tx.live(); return tx.ov.clusters.find(by) }

// GetNode implements ReadTx.
func (tx *txn) GetNode(id string) *api.Node { tx.live(); n, _ := tx.ov.nodes.get(id); return n }

// FindNodes implements ReadTx.
func (tx *txn) FindNodes(by By) []*api.Node { tx.live(); return tx.ov.nodes.find(by) }

// GetService implements ReadTx.
func (tx *txn) GetService(id string) *api.Service {
	tx.live()
	s, _ := tx.ov.services.get(id)
	return s
}

// FindServices implements ReadTx.
func (tx *txn) FindServices(by By) []*api.Service { tx.live(); return tx.ov.services.find(by) }

// GetTask implements ReadTx.
func (tx *txn) GetTask(id string) *api.Task { tx.live(); t, _ := tx.ov.tasks.get(id); return t }

// FindTasks implements ReadTx.
func (tx *txn) FindTasks(by By) []*api.Task { tx.live(); return tx.ov.tasks.find(by) }

// GetNetwork implements ReadTx.
func (tx *txn) GetNetwork(id string) *api.Network {
	tx.live()
	n, _ := tx.ov.networks.get(id)
	return n
}

// FindNetworks implements ReadTx.
func (tx *txn) FindNetworks(by By) []*api.Network { tx.live(); return tx.ov.networks.find(by) }

// GetSecret implements ReadTx.
func (tx *txn) GetSecret(id string) *api.Secret { tx.live(); s, _ := tx.ov.secrets.get(id); return s }

// FindSecrets implements ReadTx.
func (tx *txn) FindSecrets(by By) []*api.Secret { tx.live(); return tx.ov.secrets.find(by) }

// GetConfig implements ReadTx.
func (tx *txn) GetConfig(id string) *api.Config { tx.live(); c, _ := tx.ov.configs.get(id); return c }

// FindConfigs implements ReadTx.
func (tx *txn) FindConfigs(by By) []*api.Config { tx.live(); return tx.ov.configs.find(by) }

// CreateCluster implements Tx.
func (tx *txn) CreateCluster(c *api.Cluster) error { return txCreate(tx, &tx.ov.clusters, c) }

// UpdateCluster implements Tx.
func (tx *txn) UpdateCluster(c *api.Cluster) error { return txUpdate(tx, &tx.ov.clusters, c) }

// DeleteCluster implements Tx.
func (tx *txn) DeleteCluster(id string) error { return txDelete(tx, &tx.ov.clusters, id) }

// CreateNode implements Tx.
func (tx *txn) CreateNode(n *api.Node) error { return txCreate(tx, &tx.ov.nodes, n) }

// UpdateNode implements Tx.
func (tx *txn) UpdateNode(n *api.Node) error { return txUpdate(tx, &tx.ov.nodes, n) }

// DeleteNode implements Tx.
func (tx *txn) DeleteNode(id string) error { return txDelete(tx, &tx.ov.nodes, id) }

// CreateService implements Tx.
func (tx *txn) CreateService(s *api.Service) error { return txCreate(tx, &tx.ov.services, s) }

// UpdateService implements Tx.
func (tx *txn) UpdateService(s *api.Service) error { return txUpdate(tx, &tx.ov.services, s) }

// DeleteService implements Tx.
func (tx *txn) DeleteService(id string) error { return txDelete(tx, &tx.ov.services, id) }

// CreateTask implements Tx.
func (tx *txn) CreateTask(t *api.Task) error { return txCreate(tx, &tx.ov.tasks, t) }

// UpdateTask implements Tx.
func (tx *txn) UpdateTask(t *api.Task) error { return txUpdate(tx, &tx.ov.tasks, t) }

// DeleteTask implements Tx.
func (tx *txn) DeleteTask(id string) error { return txDelete(tx, &tx.ov.tasks, id) }

// CreateNetwork implements Tx.
func (tx *txn) CreateNetwork(n *api.Network) error { return txCreate(tx, &tx.ov.networks, n) }

// UpdateNetwork implements Tx.
func (tx *txn) UpdateNetwork(n *api.Network) error { return txUpdate(tx, &tx.ov.networks, n) }

// DeleteNetwork implements Tx.
func (tx *txn) DeleteNetwork(id string) error { return txDelete(tx, &tx.ov.networks, id) }

// CreateSecret implements Tx.
func (tx *txn) CreateSecret(s *api.Secret) error { return txCreate(tx, &tx.ov.secrets, s) }

// UpdateSecret implements Tx.
func (tx *txn) UpdateSecret(s *api.Secret) error { return txUpdate(tx, &tx.ov.secrets, s) }

// DeleteSecret implements Tx.
func (tx *txn) DeleteSecret(id string) error { return txDelete(tx, &tx.ov.secrets, id) }

// CreateConfig implements Tx.
func (tx *txn) CreateConfig(c *api.Config) error { return txCreate(tx, &tx.ov.configs, c) }

// UpdateConfig implements Tx.
func (tx *txn) UpdateConfig(c *api.Config) error { return txUpdate(tx, &tx.ov.configs, c) }

// DeleteConfig implements Tx.
func (tx *txn) DeleteConfig(id string) error { return txDelete(tx, &tx.ov.configs, id) }
