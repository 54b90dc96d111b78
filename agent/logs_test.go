package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/proto/api"
)

// fakeReader answers "TASK tail=N since=S" per task; task "bad" fails;
// following, it then waits for its context.
type fakeReader struct{}

func (fakeReader) ReadLogs(ctx context.Context, id string, tail, since int64, follow bool, send func(*api.LogMessage) error) error {
	if id == "bad" {
		return errors.New("disk on fire")
	}
	if err := send(&api.LogMessage{TaskId: id, Data: []byte(fmt.Sprintf("%s tail=%d since=%d", id, tail, since))}); err != nil {
		return err
	}
	if follow {
		<-ctx.Done()
	}
	return nil
}

func serveLogs(t *testing.T, s *LogServer) api.LogsClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	api.RegisterLogsServer(gs, s)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return api.NewLogsClient(conn)
}

func readAll(t *testing.T, c api.LogsClient, req *api.TaskLogsRequest, n int) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.TaskLogs(ctx, req)
	if err != nil {
		return nil, err
	}
	var out []string
	for n < 0 || len(out) < n {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, err
		}
		out = append(out, string(m.Data))
	}
	sort.Strings(out)
	return out, nil
}

// The LogServer answers nothing until it has a reader (or when the
// executor keeps no output), passes the options to the reader for every
// task once, follows until the caller stops, and reports a failed read.
func TestLogServer(t *testing.T) {
	s := NewLogServer()
	c := serveLogs(t, s)
	if got, err := readAll(t, c, &api.TaskLogsRequest{TaskIds: []string{"t1"}}, -1); err != nil || len(got) != 0 {
		t.Fatalf("without a reader: %q, %v", got, err)
	}
	s.SetReader(struct{}{}) // not a LogReader
	if got, err := readAll(t, c, &api.TaskLogsRequest{TaskIds: []string{"t1"}}, -1); err != nil || len(got) != 0 {
		t.Fatalf("with an executor keeping no output: %q, %v", got, err)
	}
	s.SetReader(fakeReader{})
	got, err := readAll(t, c, &api.TaskLogsRequest{TaskIds: []string{"t2", "t1", "t2"}, Tail: 3, Since: 9}, -1)
	if err != nil || strings.Join(got, ",") != "t1 tail=3 since=9,t2 tail=3 since=9" {
		t.Fatalf("got %q, %v", got, err)
	}
	got, err = readAll(t, c, &api.TaskLogsRequest{TaskIds: []string{"t1", "t2"}, Follow: true}, 2)
	if err != nil || len(got) != 2 {
		t.Fatalf("follow: %q, %v", got, err)
	}
	if _, err := readAll(t, c, &api.TaskLogsRequest{TaskIds: []string{"t1", "bad"}, Follow: true}, -1); status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("failed read: %v", err)
	}
	if _, err := readAll(t, c, &api.TaskLogsRequest{}, -1); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("no task: %v", err)
	}
}
