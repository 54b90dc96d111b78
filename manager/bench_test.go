package manager

import (
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// payload is the 256-byte value each benchmark write carries.
var payload = make([]byte, 256)

// runWriters spreads b.N writes over w goroutines and reports committed
// writes per second and the median latency.
func runWriters(b *testing.B, w int, write func(i int64) error) {
	var next atomic.Int64
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	for g := 0; g < min(w, b.N); g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				if err := write(i); err != nil {
					failed.Add(1)
					b.Error(err)
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
}

// BenchmarkRaftWrite measures committed store writes per second on a
// three-manager cluster (bbolt with fsync, Raft over loopback TCP with
// mutual TLS) through the store API, next to raw hashicorp/raft in the
// same run; the raw baseline has the same bbolt stores but plain TCP (no
// TLS) and no store behind its FSM.
func BenchmarkRaftWrite(b *testing.B) {
	for _, w := range []int{1, 256} {
		b.Run(fmt.Sprintf("store/writers=%d", w), func(b *testing.B) {
			tc := StartTestManagers(b, 3)
			s := tc.WaitForLeader(10 * time.Second).Store()
			prefix := store.NewID()[:6]
			runWriters(b, w, func(i int64) error {
				return s.Update(context.Background(), func(tx store.Tx) error {
					return tx.CreateConfig(&api.Config{Id: store.NewID(), Spec: &api.ConfigSpec{
						Annotations: &api.Annotations{Name: fmt.Sprintf("%s-%d", prefix, i)}, Data: payload}})
				})
			})
		})
		b.Run(fmt.Sprintf("raw/writers=%d", w), func(b *testing.B) {
			r := startRawRaft(b, 3)
			runWriters(b, w, func(int64) error { return r.Apply(payload, 10*time.Second).Error() })
		})
	}
}

type countFSM struct{ n atomic.Int64 }

func (f *countFSM) Apply(*hraft.Log) interface{}         { f.n.Add(1); return nil }
func (f *countFSM) Snapshot() (hraft.FSMSnapshot, error) { return nopSnap{}, nil }
func (f *countFSM) Restore(rc io.ReadCloser) error       { return rc.Close() }

type nopSnap struct{}

func (nopSnap) Persist(s hraft.SnapshotSink) error { return s.Close() }
func (nopSnap) Release()                           {}

// startRawRaft starts n plain hashicorp/raft servers with raft-boltdb over
// loopback TCP, the baseline the store API is compared with, and returns
// the leader.
func startRawRaft(b *testing.B, n int) *hraft.Raft {
	var servers []hraft.Server
	var rafts []*hraft.Raft
	for i := 0; i < n; i++ {
		dir := b.TempDir()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		logger := hclog.New(&hclog.LoggerOptions{Output: io.Discard})
		tr, err := hraft.NewTCPTransportWithLogger(addr, nil, 8, 5*time.Second, logger)
		if err != nil {
			b.Fatal(err)
		}
		bs, err := raftboltdb.New(raftboltdb.Options{Path: dir + "/raft.db"})
		if err != nil {
			b.Fatal(err)
		}
		cfg := hraft.DefaultConfig()
		cfg.LocalID = hraft.ServerID(fmt.Sprint(i))
		cfg.Logger = logger
		r, err := hraft.NewRaft(cfg, &countFSM{}, bs, bs, hraft.NewInmemSnapshotStore(), tr)
		if err != nil {
			b.Fatal(err)
		}
		rafts = append(rafts, r)
		servers = append(servers, hraft.Server{ID: cfg.LocalID, Address: tr.LocalAddr()})
		b.Cleanup(func() { r.Shutdown().Error(); tr.Close(); bs.Close() })
	}
	if err := rafts[0].BootstrapCluster(hraft.Configuration{Servers: servers}).Error(); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range rafts {
			if r.State() == hraft.Leader {
				return r
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatal("raw raft: no leader")
	return nil
}
