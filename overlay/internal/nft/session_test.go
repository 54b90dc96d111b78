package nft

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/shoalhq/shoal/overlay/internal/nstest"
)

var testRun = nstest.NewRun("nft")

var testTable = &nftables.Table{Name: "shoal_nfttest", Family: nftables.TableFamilyIPv4}

var testBase = BaseChain{Name: "t_out", Type: nftables.ChainTypeFilter, Hook: nftables.ChainHookOutput, Priority: 0}

func openSession(t *testing.T, ns string) *Session {
	t.Helper()
	s, err := Open(ns)
	if err != nil {
		t.Fatalf("Open(%s): %v", ns, err)
	}
	t.Cleanup(s.Close)
	return s
}

func chainNames(t *testing.T, s *Session) []string {
	t.Helper()
	chains, err := TableChains(s.Conn, testTable)
	if err != nil {
		t.Fatalf("TableChains: %v", err)
	}
	var names []string
	for _, c := range chains {
		if c.Table != testTable {
			t.Errorf("chain %s: Table not set to the table asked for", c.Name)
		}
		names = append(names, c.Name)
	}
	slices.Sort(names)
	return names
}

func TestOpenRefusesWhatIsNotANetworkNamespace(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path string
		want error
	}{
		{"", ErrEmptyPath},
		{"/run/netns/" + testRun.Prefix() + "missing", fs.ErrNotExist},
		{file, ErrNotNetNS},
		{"/proc/self/ns/uts", ErrNotNetNS},
	}
	for _, c := range cases {
		if _, err := OpenNS(c.path); !errors.Is(err, c.want) {
			t.Errorf("OpenNS(%q) = %v, want %v", c.path, err, c.want)
		}
		if s, err := Open(c.path); !errors.Is(err, c.want) {
			if s != nil {
				s.Close()
			}
			t.Errorf("Open(%q) = %v, want %v", c.path, err, c.want)
		}
	}
}

// TestSessionStaysInItsNamespace: what a session writes is in its own
// namespace only; TableChains lists it, BaseChain recognises its base
// chain, DeleteTable removes it and succeeds again on an absent table.
func TestSessionStaysInItsNamespace(t *testing.T) {
	a, b := testRun.NewNS(t, "a"), testRun.NewNS(t, "b")
	sa, sb := openSession(t, a), openSession(t, b)

	sa.Conn.AddTable(testTable)
	sa.Conn.AddChain(testBase.Chain(testTable))
	sa.Conn.AddChain(&nftables.Chain{Name: "t_regular", Table: testTable})
	if err := sa.Conn.Flush(); err != nil {
		t.Fatalf("write the table: %v", err)
	}
	if got, want := chainNames(t, sa), []string{"t_out", "t_regular"}; !slices.Equal(got, want) {
		t.Fatalf("chains in %s = %v, want %v", a, got, want)
	}
	if got := chainNames(t, sb); len(got) != 0 {
		t.Fatalf("chains in the other namespace %s = %v, want none", b, got)
	}

	chains, err := TableChains(sa.Conn, testTable)
	if err != nil {
		t.Fatal(err)
	}
	otherPrio := testBase
	otherPrio.Priority = 10
	for _, c := range chains {
		if got, want := testBase.Matches(c), c.Name == testBase.Name; got != want {
			t.Errorf("testBase.Matches(%s) = %v, want %v", c.Name, got, want)
		}
		if otherPrio.Matches(c) {
			t.Errorf("a base chain of another priority matches %s", c.Name)
		}
	}

	for i := range 2 {
		if err := DeleteTable(sa.Conn, testTable); err != nil {
			t.Fatalf("DeleteTable #%d: %v", i+1, err)
		}
	}
	if got := chainNames(t, sa); len(got) != 0 {
		t.Fatalf("chains left after DeleteTable: %v", got)
	}
}

// TestSessionCarriesLargeBatches: a batch of 1000 chains with a rule each
// is committed and acknowledged in full, which default socket buffers do
// not carry (ENOBUFS).
func TestSessionCarriesLargeBatches(t *testing.T) {
	s := openSession(t, testRun.NewNS(t, "big"))
	s.Conn.AddTable(testTable)
	for i := range 1000 {
		c := s.Conn.AddChain(&nftables.Chain{Name: "c" + strconv.Itoa(i), Table: testTable})
		s.Conn.AddRule(&nftables.Rule{Table: testTable, Chain: c, Exprs: []expr.Any{&expr.Counter{}}})
	}
	if err := s.Conn.Flush(); err != nil {
		t.Fatalf("commit a batch of 1000 chains and rules: %v", err)
	}
	if got := chainNames(t, s); len(got) != 1000 {
		t.Fatalf("%d chains after the batch, want 1000", len(got))
	}
}
