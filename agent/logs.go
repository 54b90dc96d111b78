package agent

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/proto/api"
)

// LogReader reads the captured output of the tasks a node runs. The
// containerd executor is one.
type LogReader interface {
	// ReadLogs sends the output of one task, oldest first, with task_id
	// set: the records at or after since (Unix nanoseconds; 0: all), of
	// which only the last tail when tail >= 0. With follow it then sends
	// new records until ctx ends and returns nil. A task with no output
	// sends nothing. It fails with send's error, or when the output
	// cannot be read.
	ReadLogs(ctx context.Context, taskID string, tail, since int64, follow bool, send func(*api.LogMessage) error) error
}

// LogServer is the node's api.LogsServer. It serves from the LogReader
// set with SetReader (the daemon's executor, once it exists); until then,
// and for an executor that keeps no output (the simulated one), a request
// is answered with no message. It is safe for concurrent use.
type LogServer struct {
	api.UnimplementedLogsServer

	mu     sync.Mutex
	reader LogReader
}

// NewLogServer returns a LogServer with no reader yet.
func NewLogServer() *LogServer { return &LogServer{} }

// SetReader makes the server read from exec when exec is a LogReader
// (otherwise requests keep getting no message). It may be called again,
// for a new executor.
func (s *LogServer) SetReader(exec any) {
	r, _ := exec.(LogReader)
	s.mu.Lock()
	s.reader = r
	s.mu.Unlock()
}

// TaskLogs implements api.LogsServer: the output of every named task,
// each task's records in order, different tasks' records interleaved
// (they are read concurrently). Without follow the stream ends once every
// task's output is sent; with follow it ends when the caller cancels. A
// task with no output on this node sends nothing. No task ID is
// InvalidArgument; a failure to read one task ends the stream with that
// error.
func (s *LogServer) TaskLogs(req *api.TaskLogsRequest, stream grpc.ServerStreamingServer[api.LogMessage]) error {
	if len(req.GetTaskIds()) == 0 {
		return status.Error(codes.InvalidArgument, "task logs: no task ID")
	}
	s.mu.Lock()
	r := s.reader
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	var (
		sendMu sync.Mutex
		wg     sync.WaitGroup
		errMu  sync.Mutex
		first  error
	)
	send := func(m *api.LogMessage) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(m)
	}
	seen := map[string]bool{}
	for _, id := range req.GetTaskIds() {
		if seen[id] {
			continue
		}
		seen[id] = true
		wg.Go(func() {
			err := r.ReadLogs(ctx, id, req.GetTail(), req.GetSince(), req.GetFollow(), send)
			if err != nil {
				errMu.Lock()
				if first == nil {
					first = err
					cancel()
				}
				errMu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := stream.Context().Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	if first != nil {
		if _, ok := status.FromError(first); ok {
			return first
		}
		return status.Errorf(codes.Internal, "task logs: %v", first)
	}
	return nil
}
