package api

import (
	"testing"

	"google.golang.org/grpc"
)

// Every RPC the nodes serve has an entry in the access table: a new RPC
// without one is refused to everybody, and this test says which.
func TestEveryMethodHasAccess(t *testing.T) {
	descs := []*grpc.ServiceDesc{
		&Control_ServiceDesc, &Membership_ServiceDesc, &Raft_ServiceDesc, &NodeCA_ServiceDesc,
		&Dispatcher_ServiceDesc, &LocalNode_ServiceDesc, &Logs_ServiceDesc,
	}
	for _, d := range descs {
		var names []string
		for _, m := range d.Methods {
			names = append(names, m.MethodName)
		}
		for _, s := range d.Streams {
			names = append(names, s.StreamName)
		}
		for _, n := range names {
			full := "/" + d.ServiceName + "/" + n
			a, ok := AccessOf(full)
			if !ok || a.Callers == 0 {
				t.Errorf("%s has no entry in methodAccess", full)
			}
		}
	}
}

func TestAccessTable(t *testing.T) {
	cases := []struct {
		method  string
		callers Callers
		self    bool
	}{
		{Control_CreateService_FullMethodName, CallerManager | CallerAdmin | CallerLocal, false},
		{Raft_Propose_FullMethodName, CallerManager, false},
		{Membership_Join_FullMethodName, CallerAnonymous | CallerWorker | CallerManager | CallerAdmin | CallerLocal, false},
		{Membership_Leave_FullMethodName, CallerManager | CallerWorker, true},
		{Dispatcher_Assignments_FullMethodName, CallerManager | CallerWorker, true},
		{NodeCA_RenewCertificate_FullMethodName, CallerManager | CallerWorker, false},
	}
	for _, c := range cases {
		a, ok := AccessOf(c.method)
		if !ok || a.Callers != c.callers || a.Self != c.self {
			t.Errorf("%s: %+v (found %v), want callers %b self %v", c.method, a, ok, c.callers, c.self)
		}
	}
	// Only joining is open to a caller without a certificate.
	for m, a := range methodAccess {
		if a.Callers&CallerAnonymous != 0 && m != Membership_Join_FullMethodName {
			t.Errorf("%s is open to anonymous callers", m)
		}
	}
	if _, ok := AccessOf("/shoal.api.Nope/Method"); ok {
		t.Error("an unknown service has access")
	}
}
