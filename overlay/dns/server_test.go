package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	mdns "github.com/miekg/dns"
)

var (
	webVIP   = netip.MustParseAddr("10.0.1.2")
	webTasks = []string{"10.0.1.10", "10.0.1.11", "10.0.1.12"}
	rrTasks  = []string{"10.0.1.20", "10.0.1.21", "10.0.1.22", "10.0.1.23", "10.0.1.24"}
)

// tasksOf makes Tasks from addresses, naming each NAME.i.
func tasksOf(name string, addrs ...string) []Task {
	var out []Task
	for i, a := range addrs {
		out = append(out, Task{Name: name + "." + string(rune('1'+i)) + ".x", Addr: netip.MustParseAddr(a)})
	}
	return out
}

// clusterServices are the services of every test: web (vip) and rr (dnsrr)
// on network app, db and another web on network other.
func clusterServices() []Service {
	return []Service{
		{Name: "web", Network: "app", VIP: webVIP, Tasks: tasksOf("web", webTasks...), Aliases: []string{"frontend"}},
		{Name: "rr", Network: "app", Tasks: tasksOf("rr", rrTasks...)},
		{Name: "db", Network: "other", VIP: netip.MustParseAddr("10.0.2.2"), Tasks: tasksOf("db", "10.0.2.10")},
		{Name: "web", Network: "other", VIP: netip.MustParseAddr("10.0.2.3"), Tasks: tasksOf("web", "10.0.2.20")},
	}
}

func viewOn(networks ...string) View {
	return View{Networks: networks, Services: clusterServices()}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestClusterNamesOverUDPAndTCP(t *testing.T) {
	ns := newNetNS(t, false) // Attach must bring lo up itself
	s := newServer(t, Config{})
	if err := s.Attach("c1", ns, viewOn("app")); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	tests := []struct {
		name  string
		qtype uint16
		rcode int
		want  []string // sorted
	}{
		{"web", mdns.TypeA, mdns.RcodeSuccess, []string{"10.0.1.2"}},
		{"WEB.", mdns.TypeA, mdns.RcodeSuccess, []string{"10.0.1.2"}},
		{"Web", mdns.TypeA, mdns.RcodeSuccess, []string{"10.0.1.2"}},
		{"frontend", mdns.TypeA, mdns.RcodeSuccess, []string{"10.0.1.2"}},
		{"web.app", mdns.TypeA, mdns.RcodeSuccess, []string{"10.0.1.2"}},
		{"WEB.APP.", mdns.TypeA, mdns.RcodeSuccess, []string{"10.0.1.2"}},
		{"frontend.app", mdns.TypeA, mdns.RcodeSuccess, []string{"10.0.1.2"}},
		{"tasks.web", mdns.TypeA, mdns.RcodeSuccess, webTasks},
		{"Tasks.Web.", mdns.TypeA, mdns.RcodeSuccess, webTasks},
		{"tasks.frontend", mdns.TypeA, mdns.RcodeSuccess, webTasks},
		{"tasks.web.app", mdns.TypeA, mdns.RcodeSuccess, webTasks},
		{"rr", mdns.TypeA, mdns.RcodeSuccess, rrTasks},
		{"tasks.rr", mdns.TypeA, mdns.RcodeSuccess, rrTasks},
		{"web.2.x", mdns.TypeA, mdns.RcodeSuccess, []string{"10.0.1.11"}},
		{"web", mdns.TypeAAAA, mdns.RcodeSuccess, nil},
		{"tasks.web", mdns.TypeMX, mdns.RcodeSuccess, nil},
		{"nosuch", mdns.TypeA, mdns.RcodeNameError, nil},
		{"nosuch", mdns.TypeAAAA, mdns.RcodeNameError, nil},
		{"tasks.nosuch", mdns.TypeA, mdns.RcodeNameError, nil},
		{"nosuch.app", mdns.TypeA, mdns.RcodeNameError, nil},
		{"db", mdns.TypeA, mdns.RcodeNameError, nil},       // network other: not attached
		{"tasks.db", mdns.TypeA, mdns.RcodeNameError, nil}, // idem
		// Not attached to other, so db.other is not a cluster name: it is
		// forwarded, and with no upstream configured that is SERVFAIL.
		{"db.other", mdns.TypeA, mdns.RcodeServerFailure, nil},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name+"/"+mdns.TypeToString[tt.qtype], func(t *testing.T) {
				resp := queryIn(t, ns, network, tt.name, tt.qtype)
				if resp.Rcode != tt.rcode {
					t.Fatalf("rcode %s, want %s", mdns.RcodeToString[resp.Rcode], mdns.RcodeToString[tt.rcode])
				}
				if got := sorted(addrsOf(resp)); !slices.Equal(got, sorted(tt.want)) {
					t.Fatalf("answers %v, want %v", got, tt.want)
				}
				for _, rr := range resp.Answer {
					if rr.Header().Ttl != 0 {
						t.Errorf("TTL %d, want 0: %v", rr.Header().Ttl, rr)
					}
					if rr.Header().Name != mdns.Fqdn(tt.name) {
						t.Errorf("answer name %q, want the question's %q", rr.Header().Name, mdns.Fqdn(tt.name))
					}
				}
				if !resp.RecursionAvailable {
					t.Errorf("RA not set: Go's resolver takes that for a lame referral")
				}
			})
		}
	}
}

func TestMultiAddressAnswersAreShuffled(t *testing.T) {
	ns := newNetNS(t, true)
	s := newServer(t, Config{})
	if err := s.Attach("c1", ns, viewOn("app")); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	for _, tt := range []struct {
		name string
		want []string
	}{{"tasks.web", webTasks}, {"rr", rrTasks}} {
		orders := make(map[string]bool)
		for i := range 50 {
			network := []string{"udp", "tcp"}[i%2]
			got := addrsOf(queryIn(t, ns, network, tt.name, mdns.TypeA))
			if !slices.Equal(sorted(got), sorted(tt.want)) {
				t.Fatalf("%s: answers %v, want all of %v", tt.name, got, tt.want)
			}
			orders[strings.Join(got, ",")] = true
		}
		if len(orders) < 2 {
			t.Errorf("%s: the same order in 50 answers: %v", tt.name, orders)
		}
	}
}

func TestGoResolverInsideNamespace(t *testing.T) {
	ns := newNetNS(t, true)
	s := newServer(t, Config{})
	if err := s.Attach("c1", ns, viewOn("app")); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	r := resolverIn(ns)
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		want []string
	}{
		{"web.", []string{"10.0.1.2"}},
		{"Tasks.Web.", webTasks},
		{"rr.", rrTasks},
		{"frontend.app.", []string{"10.0.1.2"}},
	} {
		got, err := r.LookupHost(ctx, tt.name)
		if err != nil {
			t.Fatalf("LookupHost %s: %v", tt.name, err)
		}
		if !slices.Equal(sorted(got), sorted(tt.want)) {
			t.Errorf("LookupHost %s = %v, want %v", tt.name, got, tt.want)
		}
	}
	_, err := r.LookupHost(ctx, "nosuch.")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("LookupHost nosuch.: %v, want a not-found DNSError", err)
	}
}

func TestScopeByNetwork(t *testing.T) {
	nsApp := newNetNS(t, true)
	nsOther := newNetNS(t, true)
	s := newServer(t, Config{})
	if err := s.Attach("on-app", nsApp, viewOn("app")); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if err := s.Attach("on-other", nsOther, viewOn("other")); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	tests := []struct {
		ns, name string
		rcode    int
		want     []string
	}{
		{nsApp, "web", mdns.RcodeSuccess, []string{"10.0.1.2"}},
		{nsApp, "rr", mdns.RcodeSuccess, rrTasks},
		{nsApp, "db", mdns.RcodeNameError, nil},
		{nsOther, "web", mdns.RcodeSuccess, []string{"10.0.2.3"}},
		{nsOther, "tasks.web", mdns.RcodeSuccess, []string{"10.0.2.20"}},
		{nsOther, "db", mdns.RcodeSuccess, []string{"10.0.2.2"}},
		{nsOther, "rr", mdns.RcodeNameError, nil},
		{nsOther, "frontend", mdns.RcodeNameError, nil},
	}
	for _, tt := range tests {
		resp := queryIn(t, tt.ns, "udp", tt.name, mdns.TypeA)
		if resp.Rcode != tt.rcode || !slices.Equal(sorted(addrsOf(resp)), sorted(tt.want)) {
			t.Errorf("%s in %s: %s %v, want %s %v", tt.name, tt.ns, mdns.RcodeToString[resp.Rcode],
				addrsOf(resp), mdns.RcodeToString[tt.rcode], tt.want)
		}
	}
}

func TestSetViewReplacesAnswersAtomically(t *testing.T) {
	ns := newNetNS(t, true)
	s := newServer(t, Config{})
	viewA := View{Networks: []string{"app"}, Services: []Service{
		{Name: "web", Network: "app", VIP: netip.MustParseAddr("10.0.1.2"), Tasks: tasksOf("web", "10.0.1.10", "10.0.1.11")},
	}}
	viewB := View{Networks: []string{"app"}, Services: []Service{
		{Name: "web", Network: "app", VIP: netip.MustParseAddr("10.0.1.3"), Tasks: tasksOf("web", "10.0.1.20", "10.0.1.21", "10.0.1.22")},
	}}
	if err := s.Attach("c1", ns, viewA); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	want := func(v View) string {
		var addrs []string
		for _, task := range v.Services[0].Tasks {
			addrs = append(addrs, task.Addr.String())
		}
		return strings.Join(sorted(addrs), ",")
	}

	// Every answer during many flips is wholly one view's.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var mixed atomic.Value
	var answers atomic.Int64
	wg.Go(func() {
		for !stop.Load() {
			resp, err := exchangeIn(ns, "udp", new(mdns.Msg).SetQuestion("tasks.web.", mdns.TypeA))
			if err != nil {
				mixed.Store("query: " + err.Error())
				return
			}
			answers.Add(1)
			if got := strings.Join(sorted(addrsOf(resp)), ","); got != want(viewA) && got != want(viewB) {
				mixed.Store(got)
			}
		}
	})
	for i := range 200 {
		v := []View{viewA, viewB}[i%2]
		if err := s.SetView("c1", v); err != nil {
			t.Fatalf("SetView: %v", err)
		}
		// The next query sees the new view, with no wait.
		got := addrsOf(queryIn(t, ns, "tcp", "web", mdns.TypeA))
		if len(got) != 1 || got[0] != v.Services[0].VIP.String() {
			t.Fatalf("after SetView %d: web = %v, want %v", i, got, v.Services[0].VIP)
		}
	}
	stop.Store(true)
	wg.Wait()
	if m := mixed.Load(); m != nil {
		t.Fatalf("an answer mixed two views or failed: %v", m)
	}
	if answers.Load() == 0 {
		t.Fatalf("the concurrent querier got no answer")
	}
}

func TestAttachDetachLifecycle(t *testing.T) {
	ns := newNetNS(t, true)
	ns2 := newNetNS(t, true)
	s := newServer(t, Config{})

	if err := s.SetView("c1", viewOn("app")); !errors.Is(err, ErrNotAttached) {
		t.Errorf("SetView before Attach: %v, want ErrNotAttached", err)
	}
	if err := s.Attach("c1", "/run/netns/"+runPrefix+"missing", viewOn("app")); !errors.Is(err, ErrNamespace) {
		t.Errorf("Attach to a missing namespace: %v, want ErrNamespace", err)
	}
	bad := View{Networks: []string{"app"}, Services: []Service{{Name: "bad name", Network: "app"}}}
	if err := s.Attach("c1", ns, bad); !errors.Is(err, ErrInvalidView) {
		t.Errorf("Attach with an invalid view: %v, want ErrInvalidView", err)
	}
	if err := s.Attach("c1", ns, viewOn("app")); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	// Idempotent: the same id and namespace only replace the view.
	if err := s.Attach("c1", ns, viewOn("other")); err != nil {
		t.Fatalf("Attach again: %v", err)
	}
	if got := addrsOf(queryIn(t, ns, "udp", "db", mdns.TypeA)); !slices.Equal(got, []string{"10.0.2.2"}) {
		t.Errorf("after re-Attach with network other: db = %v, want 10.0.2.2", got)
	}
	if err := s.SetView("c1", bad); !errors.Is(err, ErrInvalidView) {
		t.Errorf("SetView with an invalid view: %v, want ErrInvalidView", err)
	}
	if got := addrsOf(queryIn(t, ns, "udp", "db", mdns.TypeA)); !slices.Equal(got, []string{"10.0.2.2"}) {
		t.Errorf("a refused SetView changed the answers: db = %v", got)
	}
	// A second id cannot take the same namespace's 127.0.0.11:53.
	if err := s.Attach("c2", ns, viewOn("app")); !errors.Is(err, ErrListen) {
		t.Errorf("Attach of another id to the same namespace: %v, want ErrListen", err)
	}
	// The same id with another namespace moves there.
	if err := s.Attach("c1", ns2, viewOn("app")); err != nil {
		t.Fatalf("Attach to a new namespace: %v", err)
	}
	if _, err := exchangeIn(ns, "udp", new(mdns.Msg).SetQuestion("web.", mdns.TypeA)); err == nil {
		t.Errorf("the old namespace still answers after the container moved")
	}
	queryIn(t, ns2, "udp", "web", mdns.TypeA)

	if err := s.Detach("c1"); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	if _, err := exchangeIn(ns2, "udp", new(mdns.Msg).SetQuestion("web.", mdns.TypeA)); err == nil {
		t.Errorf("UDP still answers after Detach")
	}
	if conn, err := dialIn(ns2, "tcp", listenAddr); err == nil {
		conn.Close()
		t.Errorf("TCP still accepts after Detach")
	}
	if err := s.Detach("c1"); err != nil {
		t.Errorf("second Detach: %v, want nil", err)
	}
	// Attach again after Detach binds again.
	if err := s.Attach("c1", ns2, viewOn("app")); err != nil {
		t.Fatalf("Attach after Detach: %v", err)
	}
	queryIn(t, ns2, "tcp", "web", mdns.TypeA)

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Attach("c3", ns, viewOn("app")); !errors.Is(err, ErrClosed) {
		t.Errorf("Attach after Close: %v, want ErrClosed", err)
	}
	if err := s.SetView("c1", viewOn("app")); !errors.Is(err, ErrClosed) {
		t.Errorf("SetView after Close: %v, want ErrClosed", err)
	}
}

func TestAttachManyAndCloseReleasesAll(t *testing.T) {
	const n = 50
	s := newServer(t, Config{})
	paths := make([]string, n)
	for i := range paths {
		paths[i] = newNetNS(t, false)
		if err := s.Attach(fmt.Sprintf("c%d", i), paths[i], viewOn("app")); err != nil {
			t.Fatalf("Attach %d: %v", i, err)
		}
	}
	if got := len(s.Attached()); got != n {
		t.Fatalf("Attached() has %d ids, want %d", got, n)
	}
	for i, path := range paths {
		network := []string{"udp", "tcp"}[i%2]
		if got := addrsOf(queryIn(t, path, network, "web", mdns.TypeA)); !slices.Equal(got, []string{"10.0.1.2"}) {
			t.Fatalf("container %d: web = %v", i, got)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := len(s.Attached()); got != 0 {
		t.Errorf("Attached() has %d ids after Close", got)
	}
	for i, path := range paths {
		if _, err := exchangeIn(path, "udp", new(mdns.Msg).SetQuestion("web.", mdns.TypeA)); err == nil {
			t.Errorf("container %d still answers over UDP after Close", i)
		}
		if conn, err := dialIn(path, "tcp", listenAddr); err == nil {
			conn.Close()
			t.Errorf("container %d still accepts TCP after Close", i)
		}
	}
}
