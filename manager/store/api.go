package store

import (
	"context"
	"errors"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// Sentinel errors. Callers test them with errors.Is; the API edge maps
// them to gRPC codes.
var (
	// ErrNotFound means no object has that ID.
	ErrNotFound = errors.New("object not found")
	// ErrExist means an object with that ID exists already.
	ErrExist = errors.New("object already exists")
	// ErrNameConflict means another object of the same kind has the name.
	ErrNameConflict = errors.New("name is already in use")
	// ErrSequenceConflict means the object changed since it was read: read
	// it again and retry the write.
	ErrSequenceConflict = errors.New("update out of sequence")
	// ErrTaskStateBackwards means a task's state or desired state would move
	// backwards, which is never allowed.
	ErrTaskStateBackwards = errors.New("task state cannot move backwards")
	// ErrInvalidObject means an action is malformed (no ID, no object).
	ErrInvalidObject = errors.New("invalid object in store action")
	// ErrResourceConflict means the object claims what another object of
	// its kind holds (a network's VNI or an overlapping subnet).
	ErrResourceConflict = errors.New("resource already in use")
)

// Proposer replicates a command. Propose returns once the command has been
// committed and applied to the local store (so a following View sees it),
// with the log index it was applied at, or with the error Apply returned.
// When Propose fails with an error other than one of this package's
// sentinels (for example a lost leadership), the command may or may not
// have been applied.
type Proposer interface {
	Propose(ctx context.Context, cmd *api.Command) (uint64, error)
}

// By selects objects in Find calls. Results are always sorted by ID.
type By interface{ isBy() }

type byAll struct{}
type byName string
type byIDPrefix string
type byServiceID string
type byNodeID string
type byDesiredState api.TaskState
type byRole api.NodeRole

func (byAll) isBy()          {}
func (byName) isBy()         {}
func (byIDPrefix) isBy()     {}
func (byServiceID) isBy()    {}
func (byNodeID) isBy()       {}
func (byDesiredState) isBy() {}
func (byRole) isBy()         {}

// All selects every object of a kind.
func All() By { return byAll{} }

// ByName selects objects whose annotations name equals name (nodes: their
// spec name, or their hostname when that is empty).
func ByName(name string) By { return byName(name) }

// ByIDPrefix selects objects whose ID starts with prefix.
func ByIDPrefix(prefix string) By { return byIDPrefix(prefix) }

// ByServiceID selects the tasks of a service.
func ByServiceID(id string) By { return byServiceID(id) }

// ByNodeID selects the tasks placed on a node.
func ByNodeID(id string) By { return byNodeID(id) }

// ByDesiredState selects tasks by desired state.
func ByDesiredState(s api.TaskState) By { return byDesiredState(s) }

// ByRole selects nodes by their observed role.
func ByRole(r api.NodeRole) By { return byRole(r) }

// ReadTx is a consistent read-only view of the store. Objects it returns
// are shared: clone before changing. Get returns nil when absent. Find
// returns objects sorted by ID; a selector that does not apply to a kind
// returns nothing.
type ReadTx interface {
	GetCluster(id string) *api.Cluster
	FindClusters(by By) []*api.Cluster
	GetNode(id string) *api.Node
	FindNodes(by By) []*api.Node
	GetService(id string) *api.Service
	FindServices(by By) []*api.Service
	GetTask(id string) *api.Task
	FindTasks(by By) []*api.Task
	GetNetwork(id string) *api.Network
	FindNetworks(by By) []*api.Network
	GetSecret(id string) *api.Secret
	FindSecrets(by By) []*api.Secret
	GetConfig(id string) *api.Config
	FindConfigs(by By) []*api.Config
}

// Tx is a read-write transaction: reads see the store plus the writes
// staged so far. Create fails with ErrExist or ErrNameConflict; Update
// and Delete fail with ErrNotFound, and Update with ErrSequenceConflict
// when obj.Meta.Version is not the current version. Staged writes are
// proposed together when the Update function returns nil.
type Tx interface {
	ReadTx
	CreateCluster(c *api.Cluster) error
	UpdateCluster(c *api.Cluster) error
	DeleteCluster(id string) error
	CreateNode(n *api.Node) error
	UpdateNode(n *api.Node) error
	DeleteNode(id string) error
	CreateService(s *api.Service) error
	UpdateService(s *api.Service) error
	DeleteService(id string) error
	CreateTask(t *api.Task) error
	UpdateTask(t *api.Task) error
	DeleteTask(id string) error
	CreateNetwork(n *api.Network) error
	UpdateNetwork(n *api.Network) error
	DeleteNetwork(id string) error
	CreateSecret(s *api.Secret) error
	UpdateSecret(s *api.Secret) error
	DeleteSecret(id string) error
	CreateConfig(c *api.Config) error
	UpdateConfig(c *api.Config) error
	DeleteConfig(id string) error
}

// EventKind says what happened to an object.
type EventKind int

// Event kinds.
const (
	EventCreate EventKind = iota
	EventUpdate
	EventRemove
)

// Event is one applied change. Object is the object after the change (for
// a removal, the removed object); Old is the object before an update.
type Event struct {
	Kind   EventKind
	Object proto.Message
	Old    proto.Message
	// Index is the log index of the command that made the change.
	Index uint64
}
