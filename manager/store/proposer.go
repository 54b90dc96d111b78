package store

import (
	"context"
	"crypto/rand"
	"math/big"
	"strings"
	"sync"

	"github.com/shoalhq/shoal/proto/api"
)

// LocalProposer applies commands straight to one store at increasing
// indexes (the store's applied index plus one), without replication. It
// is for a single process without Raft and for tests of the packages that
// sit above the store. It is safe for concurrent use: commands are applied
// one at a time.
type LocalProposer struct {
	mu sync.Mutex
	s  *MemoryStore
}

// NewLocalProposer returns a proposer that applies to s. Pass it to New,
// or to s.SetProposer.
func NewLocalProposer(s *MemoryStore) *LocalProposer { return &LocalProposer{s: s} }

// Propose implements Proposer: it applies cmd at the next index and
// returns that index with Apply's error. It returns ctx.Err() without
// applying when ctx has ended. Like Apply, it takes ownership of cmd:
// the caller must not use cmd or its objects afterwards (Update never
// does).
func (p *LocalProposer) Propose(ctx context.Context, cmd *api.Command) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	index := p.s.AppliedIndex() + 1
	return index, p.s.Apply(index, cmd)
}

// idLength is the length of an ID: 128 random bits in base 36.
const idLength = 25

// NewID returns a new random object ID: 25 characters of [0-9a-z], 128
// bits from crypto/rand, written in base 36 and padded with leading zeros.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails; it crashes the program instead.
	s := new(big.Int).SetBytes(b[:]).Text(36)
	return strings.Repeat("0", idLength-len(s)) + s
}
