package controlapi

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

func TestListTasks(t *testing.T) {
	srv, st, _ := newTestServer(t)
	ctx := context.Background()
	const (
		run      = api.TaskState_TASK_STATE_RUNNING
		shutdown = api.TaskState_TASK_STATE_SHUTDOWN
		remove   = api.TaskState_TASK_STATE_REMOVE
	)
	seed(t, st, func(tx store.Tx) error {
		for _, tk := range []*api.Task{
			task("t1", "a", "n1", run, run),
			task("t2", "a", "n2", shutdown, shutdown),
			task("t3", "b", "n1", run, run),
			task("t4", "b", "", run, api.TaskState_TASK_STATE_PENDING),
			task("t5", "c", "n2", remove, run),
		} {
			if err := tx.CreateTask(tk); err != nil {
				return err
			}
		}
		return nil
	})
	for _, tc := range []struct {
		name string
		req  *api.ListTasksRequest
		want []string
	}{
		{"all", &api.ListTasksRequest{}, []string{"t1", "t2", "t3", "t4", "t5"}},
		{"service", &api.ListTasksRequest{ServiceIds: []string{"a"}}, []string{"t1", "t2"}},
		{"services", &api.ListTasksRequest{ServiceIds: []string{"c", "a", "a"}}, []string{"t1", "t2", "t5"}},
		{"node", &api.ListTasksRequest{NodeIds: []string{"n1"}}, []string{"t1", "t3"}},
		{"unassigned", &api.ListTasksRequest{NodeIds: []string{""}}, []string{"t4"}},
		{"desired", &api.ListTasksRequest{DesiredStates: []api.TaskState{shutdown, remove}}, []string{"t2", "t5"}},
		{"service and node", &api.ListTasksRequest{ServiceIds: []string{"a", "b"}, NodeIds: []string{"n1"}}, []string{"t1", "t3"}},
		{"node and desired", &api.ListTasksRequest{NodeIds: []string{"n2"}, DesiredStates: []api.TaskState{run}}, nil},
		{"all three", &api.ListTasksRequest{ServiceIds: []string{"b"}, NodeIds: []string{"n1", ""}, DesiredStates: []api.TaskState{run}},
			[]string{"t3", "t4"}},
		{"no such service", &api.ListTasksRequest{ServiceIds: []string{"zz"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := srv.ListTasks(ctx, tc.req)
			must(t, err)
			var got []string
			for _, tk := range resp.GetTasks() {
				got = append(got, tk.GetId())
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	_, err := srv.ListTasks(ctx, &api.ListTasksRequest{DesiredStates: []api.TaskState{1}})
	wantCode(t, err, codes.InvalidArgument, "desired_states[0]")
}
