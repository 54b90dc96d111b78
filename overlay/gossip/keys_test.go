package gossip

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// decryptFailed is what memberlist logs when nothing in the keyring
// decrypts a packet or stream.
const decryptFailed = "no installed keys could decrypt the message"

// badKeyLists are key lists Start and SetKeys refuse, with a word their
// error must contain.
func badKeyLists() []struct {
	name string
	keys [][]byte
	want string
} {
	return []struct {
		name string
		keys [][]byte
		want string
	}{
		{"nil", nil, "none given"},
		{"empty", [][]byte{}, "none given"},
		{"nil key", [][]byte{nil}, "key 0 is 0 bytes"},
		{"AES-128 key", [][]byte{testKey(1)[:16]}, "key 0 is 16 bytes"},
		{"hex-encoded key", [][]byte{testKey(1), []byte(hex.EncodeToString(testKey(2)))}, "key 1 is 64 bytes"},
		{"duplicate", [][]byte{testKey(1), testKey(2), testKey(1)}, "keys 0 and 2 are the same"},
	}
}

// TestStartRefusesBadKeys: Start refuses a config with no key, a key that
// is not 32 bytes or a key listed twice, names the problem without the
// key material, and binds nothing.
func TestStartRefusesBadKeys(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, clusterOpts{})
	for _, tc := range badKeyLists() {
		cfg := c.config(2)
		cfg.Keys = tc.keys
		tb, err := Start(cfg)
		if err == nil {
			tb.Shutdown()
			t.Errorf("%s: Start succeeded", tc.name)
			continue
		}
		if !errors.Is(err, ErrInvalidKeys) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Start err = %v, want ErrInvalidKeys saying %q", tc.name, err, tc.want)
		}
		for _, k := range tc.keys {
			if len(k) > 0 && (strings.Contains(err.Error(), string(k)) || strings.Contains(err.Error(), hex.EncodeToString(k))) {
				t.Errorf("%s: error %q contains a key", tc.name, err)
			}
		}
	}
	// Nothing was bound: a good config starts on the same address.
	c.start(2)
	c.join(2, 1)
	c.waitMembers(2)
}

// TestSetKeys: SetKeys refuses what Start refuses and then changes
// nothing; otherwise the keyring becomes exactly the keys given, primary
// first, whatever it held before (including a kept key behind a removed
// one); setting the same keys again is a no-op; neither the caller's
// slices nor Keys' result share memory with the keyring.
func TestSetKeys(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, clusterOpts{})
	tb := c.table(1)
	k := func(n int) []byte { return testKey(n) }

	for _, tc := range badKeyLists() {
		if err := tb.SetKeys(tc.keys); !errors.Is(err, ErrInvalidKeys) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: SetKeys err = %v, want ErrInvalidKeys saying %q", tc.name, err, tc.want)
		}
		if got := tb.Keys(); !slices.EqualFunc(got, [][]byte{k(1)}, bytes.Equal) {
			t.Errorf("%s: a refused SetKeys changed the keys to %s", tc.name, keyNames(got))
		}
	}

	steps := [][][]byte{
		{k(1), k(2)},       // install a key
		{k(2), k(1)},       // use it
		{k(2)},             // remove the old one
		{k(3), k(2), k(1)}, // several at once
		{k(3), k(1)},       // drop a key in the middle: k(1) is taken off and put back
		{k(1), k(3)},       // swap the primary, same set
		{k(4)},             // replace everything
		{k(2), k(4), k(3)},
		{k(3)},
	}
	changes := strings.Count(c.logs.String(), "gossip keys changed")
	for _, want := range steps {
		if err := tb.SetKeys(want); err != nil {
			t.Fatalf("SetKeys(%s): %v", keyNames(want), err)
		}
		got := tb.Keys()
		if !bytes.Equal(got[0], want[0]) || !sameKeySet(got, want) {
			t.Errorf("after SetKeys(%s) the keyring holds %s", keyNames(want), keyNames(got))
		}
		changes++
	}
	if n := strings.Count(c.logs.String(), "gossip keys changed"); n != changes {
		t.Errorf("%d changes logged, want %d", n, changes)
	}

	// The same keys again, in a copy: nothing changes, nothing is logged.
	if err := tb.SetKeys([][]byte{bytes.Clone(k(3))}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(c.logs.String(), "gossip keys changed"); n != changes {
		t.Errorf("setting the installed keys again logged a change")
	}

	// No shared memory with the caller.
	mine := [][]byte{bytes.Clone(k(5)), bytes.Clone(k(6))}
	if err := tb.SetKeys(mine); err != nil {
		t.Fatal(err)
	}
	mine[0][0] ^= 0xff
	got := tb.Keys()
	got[1][0] ^= 0xff
	if again := tb.Keys(); !slices.EqualFunc(again, [][]byte{k(5), k(6)}, bytes.Equal) {
		t.Errorf("keys changed through the caller's slices: %s", keyNames(again))
	}
}

// TestRemoveStaleKeysUnderReaders: removing a key in the middle of the
// ring while another goroutine reads it as memberlist's receive path does
// (GetKeys, then the keys without a lock) leaves exactly the wanted keys
// and, under -race, reports no race. (memberlist's own RemoveKey of that
// key does race: it shifts the shared array in place.)
func TestRemoveStaleKeysUnderReaders(t *testing.T) {
	t.Parallel()
	want := [][]byte{testKey(1), testKey(3), testKey(4)}
	for range 20 {
		kr, err := memberlist.NewKeyring([][]byte{testKey(2), testKey(3), testKey(4)}, testKey(1))
		if err != nil {
			t.Fatal(err)
		}
		var reads atomic.Int64
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, k := range kr.GetKeys() {
					_ = k[0]
				}
				reads.Add(1)
			}
		}()
		waitFor(t, 5*time.Second, "the reader to run", func() bool { return reads.Load() > 0 })
		removeStaleKeys(kr, want)
		before := reads.Load()
		waitFor(t, 5*time.Second, "the reader to read again", func() bool { return reads.Load() > before })
		close(stop)
		<-done
		if got := kr.GetKeys(); !bytes.Equal(got[0], want[0]) || !sameKeySet(got, want) {
			t.Fatalf("keyring holds %s, want %s", keyNames(got), keyNames(want))
		}
	}
}

// TestWrongKeyIsolated: a table under another key, and a memberlist
// without encryption, can neither join the cluster nor be joined; while
// the cluster's members go on exchanging endpoints, the outsider holds
// only its own and its own never reaches them.
func TestWrongKeyIsolated(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, clusterOpts{})
	c.opts.mod = func(i int, cfg *Config) {
		if i == 4 {
			cfg.Keys = [][]byte{testKey(2)}
		}
	}
	t4 := c.start(4)
	e4 := c.tep(4, 1, "netA")
	if err := t4.Publish(e4); err != nil {
		t.Fatal(err)
	}
	if _, err := t4.Join([]string{c.addr(1).String()}); !errors.Is(err, ErrJoin) {
		t.Errorf("h4 (other key) joining h1: err = %v, want ErrJoin", err)
	}
	if _, err := c.table(1).Join([]string{c.addr(4).String()}); !errors.Is(err, ErrJoin) {
		t.Errorf("h1 joining h4 (other key): err = %v, want ErrJoin", err)
	}
	plain := plainMemberlist(t, c, 5)
	if _, err := plain.Join([]string{c.addr(1).String()}); err == nil {
		t.Errorf("a memberlist without encryption joined h1")
	}
	if n := strings.Count(c.logs.String(), decryptFailed); n < 2 {
		t.Errorf("memberlist logged %q %d times, want the refused joins", decryptFailed, n)
	}

	// The members go on: each publishes after the attempts, and all three
	// hold all three.
	var all []string
	for i := 1; i <= 3; i++ {
		e := c.tep(i, 1, "netA")
		if err := c.table(i).Publish(e); err != nil {
			t.Fatal(err)
		}
		all = append(all, want(i, e)...)
	}
	c.waitTables(all, 4)
	for i := 1; i <= 3; i++ {
		if m := c.table(i).Members(); !slices.Equal(m, []string{"h1", "h2", "h3"}) {
			t.Errorf("%s lists members %v", name(i), m)
		}
	}
	if got := ids(t4.All()); !slices.Equal(got, want(4, e4)) {
		t.Errorf("h4 (other key) holds %v, want only its own %v", got, want(4, e4))
	}
	if m := t4.Members(); !slices.Equal(m, []string{"h4"}) {
		t.Errorf("h4 (other key) lists members %v", m)
	}
	if m := plain.NumMembers(); m != 1 {
		t.Errorf("the plaintext memberlist lists %d members", m)
	}
}

// TestForgedPackets: a UDP packet carrying a valid endpoint delta is
// dropped when it is in clear, encrypted under another key, or encrypted
// under the cluster's key with another label as associated data; the
// same delta encrypted with the cluster's key and label is accepted
// (which shows the others were dropped for their encryption alone).
func TestForgedPackets(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, clusterOpts{})
	conn, err := net.Dial("udp", c.addr(1).String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// userMsg is memberlist's message type for a delegate's message.
	const userMsg = 8
	forge := func(n int) (Endpoint, []byte) {
		ep := c.tep(9, n, "netA")
		ep.Node = "h9"
		d := delta{Node: "h9", Addr: c.addr(9), Inc: 1, Version: uint64(n), ID: ep.ID, Endpoint: ep}
		return ep, append([]byte{userMsg}, encodeDelta(d)...)
	}
	send := func(what string, payload []byte) {
		pkt, err := memberlist.AddLabelHeaderToPacket(payload, c.label)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(pkt); err != nil {
			t.Fatalf("send %s: %v", what, err)
		}
	}
	clear, msg1 := forge(1)
	otherKey, msg2 := forge(2)
	otherLabel, msg3 := forge(3)
	good, msg4 := forge(4)
	send("in clear", msg1)
	send("under another key", sealPacket(t, testKey(2), c.label, msg2))
	send("under another label", sealPacket(t, testKey(1), c.label+"-other", msg3))
	send("under the cluster's key and label", sealPacket(t, testKey(1), c.label, msg4))

	// memberlist handles one socket's packets in order: once the last is
	// in, the others have been judged.
	waitFor(t, 10*time.Second, "h1 to accept the properly encrypted packet", func() bool {
		return slices.Contains(ids(c.table(1).All()), want(9, good)[0])
	})
	for what, ep := range map[string]Endpoint{"in clear": clear, "under another key": otherKey, "under another label": otherLabel} {
		if slices.Contains(ids(c.table(1).All()), want(9, ep)[0]) {
			t.Errorf("h1 accepted a delta sent %s", what)
		}
	}
	if n := strings.Count(c.logs.String(), "Decrypt packet failed"); n != 3 {
		t.Errorf("memberlist logged %d failed decryptions, want 3", n)
	}
}

// TestLargestDeltaFits: with the longest label allowed, the largest
// endpoint Publish accepts still fits in an encrypted gossip packet and
// reaches the other table.
func TestLargestDeltaFits(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2, clusterOpts{mod: func(_ int, cfg *Config) {
		cfg.Label += strings.Repeat("-", maxLabelBytes-len(cfg.Label))
		cfg.Incarnation = math.MaxUint64 / 2 // a 9-byte varint, near the worst case
	}})
	t1 := c.table(1)
	ep := c.tep(1, 1, "netA")
	for n := 0; ; n++ {
		next := ep
		next.Aliases = append(slices.Clone(ep.Aliases), fmt.Sprintf("alias-%03d", n))
		if _, err := t1.prepare(next); err != nil {
			break
		}
		ep = next
	}
	for n := 1; ; n++ { // fill the last bytes
		next := ep
		next.Aliases = append(slices.Clone(ep.Aliases), strings.Repeat("z", n))
		if _, err := t1.prepare(next); err != nil {
			break
		}
		ep = next
	}
	if err := t1.Publish(ep); err != nil {
		t.Fatal(err)
	}
	norm, _ := t1.prepare(ep)
	size := len(encodeDelta(delta{Node: "h1", Addr: c.addr(1), Inc: math.MaxUint64 / 2, Version: 1, ID: ep.ID, Endpoint: norm}))
	t.Logf("delta of %d bytes (limit %d), label of %d bytes", size, maxDeltaBytes, maxLabelBytes)
	waitFor(t, 10*time.Second, "h2 to hold h1's largest endpoint", func() bool {
		return slices.Equal(ids(c.table(2).All()), want(1, ep))
	})
}

// TestKeyRotation: three tables on key k1 rotate to k2 in the protocol's
// three steps, each table in turn at each step: install [k1 k2], use
// [k2 k1], remove [k2]. After every single change an endpoint is
// published and one withdrawn, on the table just changed and on another,
// and every table holds exactly the result before the next change. No
// packet fails to decrypt and no table is ever declared failed during the
// rotation. Afterwards a host that was down during the rotation and comes
// back with only k1 is cut off: it cannot join, the others' reconnects
// to it fail, and no endpoint crosses either way.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	k1, k2 := testKey(1), testKey(2)
	c := newCluster(t, 4, clusterOpts{mod: func(_ int, cfg *Config) {
		cfg.PushPullInterval = 500 * time.Millisecond // full-table streams under mixed keys too
		cfg.ReconnectInterval = 300 * time.Millisecond
	}})
	c.crash(4) // down during the rotation
	c.waitMembers(3)
	waitFor(t, 5*time.Second, "the others to log h4 as failed", func() bool {
		return strings.Count(c.logs.String(), "peer failed") == 3
	})
	mark := len(c.logs.String())

	eps := map[int]Endpoint{} // each host's current endpoint
	expect := func() []string {
		var out []string
		for i := 1; i <= 3; i++ {
			if e, ok := eps[i]; ok {
				out = append(out, want(i, e)...)
			}
		}
		return out
	}
	n := 0
	change := func(i int) { // withdraw host i's endpoint, publish a new one
		n++
		if old, ok := eps[i]; ok {
			if err := c.table(i).Withdraw(old.ID); err != nil {
				t.Fatal(err)
			}
		}
		e := c.tep(i, n, "netA")
		if err := c.table(i).Publish(e); err != nil {
			t.Fatal(err)
		}
		eps[i] = e
	}
	for i := 1; i <= 3; i++ {
		change(i)
	}
	c.waitTables(expect())

	for _, step := range []struct {
		name string
		keys [][]byte
	}{{"install", [][]byte{k1, k2}}, {"use", [][]byte{k2, k1}}, {"remove", [][]byte{k2}}} {
		for i := 1; i <= 3; i++ {
			if err := c.table(i).SetKeys(step.keys); err != nil {
				t.Fatalf("%s on %s: %v", step.name, name(i), err)
			}
			change(i)
			change(i%3 + 1)
			took := c.waitTables(expect())
			t.Logf("%s on %s: a withdrawal and a publication on %s and %s reached every table after %v",
				step.name, name(i), name(i), name(i%3+1), took)
		}
	}
	c.waitMembers(3)
	during := c.logs.String()[mark:]
	if strings.Contains(during, decryptFailed) || strings.Contains(during, "peer failed") {
		t.Fatalf("the rotation lost packets or members:\n%s", during)
	}

	// h4 comes back with the key it had.
	t4 := c.start(4)
	e4 := c.tep(4, 1, "netA")
	if err := t4.Publish(e4); err != nil {
		t.Fatal(err)
	}
	if _, err := t4.Join([]string{c.addr(1).String()}); !errors.Is(err, ErrJoin) {
		t.Errorf("h4 on the old key joining h1: err = %v, want ErrJoin", err)
	}
	mark = len(c.logs.String())
	change(1)
	c.waitTables(expect(), 4)
	// The others retry h4 (they saw it fail) every 300ms; wait for a few
	// refusals, then look again.
	waitFor(t, 10*time.Second, "the others' reconnects to h4 to be refused", func() bool {
		return strings.Count(c.logs.String()[mark:], decryptFailed) >= 6
	})
	change(2)
	c.waitTables(expect(), 4)
	if got := ids(t4.All()); !slices.Equal(got, want(4, e4)) {
		t.Errorf("h4 on the old key holds %v, want only its own", got)
	}
	if m := t4.Members(); !slices.Equal(m, []string{"h4"}) {
		t.Errorf("h4 on the old key lists members %v", m)
	}
	for i := 1; i <= 3; i++ {
		if m := c.table(i).Members(); !slices.Equal(m, []string{"h1", "h2", "h3"}) {
			t.Errorf("%s lists members %v", name(i), m)
		}
	}
}

// TestRotationWithoutInstallCutsOff pins down why rotation installs the
// new key everywhere before any node encrypts with it: a node whose
// primary its peers do not hold still hears them, but they cannot read it,
// so its endpoints never reach them and they declare it failed.
func TestRotationWithoutInstallCutsOff(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, clusterOpts{})
	if err := c.table(1).SetKeys([][]byte{testKey(2), testKey(1)}); err != nil {
		t.Fatal(err)
	}
	e1, e2 := c.tep(1, 1, "netA"), c.tep(2, 1, "netA")
	if err := c.table(1).Publish(e1); err != nil {
		t.Fatal(err)
	}
	if err := c.table(2).Publish(e2); err != nil {
		t.Fatal(err)
	}
	leaked := func() bool {
		for _, i := range []int{2, 3} {
			if slices.Contains(ids(c.table(i).All()), want(1, e1)[0]) {
				t.Fatalf("%s holds h1's endpoint, sent under a key it does not have", name(i))
			}
		}
		return false
	}
	waitFor(t, 10*time.Second, "h1 to hold h2's endpoint (it still decrypts k1)", func() bool {
		return !leaked() && slices.Contains(ids(c.table(1).All()), want(2, e2)[0])
	})
	took := waitFor(t, 20*time.Second, "h2 and h3 to declare h1 failed", func() bool {
		return !leaked() && slices.Equal(c.table(2).Members(), []string{"h2", "h3"}) &&
			slices.Equal(c.table(3).Members(), []string{"h2", "h3"})
	})
	t.Logf("h2 and h3 declared h1 (primary k2, which they lack) failed after %v", took)
}

// plainMemberlist starts a memberlist without encryption on host i's
// address, with the cluster's label and port; shut down at cleanup.
func plainMemberlist(tb testing.TB, c *testCluster, i int) *memberlist.Memberlist {
	tb.Helper()
	mc := memberlist.DefaultLANConfig()
	mc.Name = name(i)
	mc.BindAddr = c.addr(i).Addr().String()
	mc.BindPort = int(c.port)
	mc.AdvertiseAddr, mc.AdvertisePort = mc.BindAddr, mc.BindPort
	mc.Label = c.label
	mc.Logger = newStdLogger(slog.New(slog.NewTextHandler(c.logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	ml, err := memberlist.Create(mc)
	if err != nil {
		tb.Fatalf("start a plaintext memberlist: %v", err)
	}
	tb.Cleanup(func() { _ = ml.Shutdown() })
	return ml
}

// sealPacket encrypts msg as memberlist does a packet: encryption version
// 1 (AES-GCM, no padding), a random nonce, the label as associated data.
func sealPacket(tb testing.TB, key []byte, label string, msg []byte) []byte {
	tb.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		tb.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]byte, 1+gcm.NonceSize(), 1+gcm.NonceSize()+len(msg)+gcm.Overhead())
	out[0] = 1
	if _, err := io.ReadFull(rand.Reader, out[1:]); err != nil {
		tb.Fatal(err)
	}
	nonce := bytes.Clone(out[1:])
	return gcm.Seal(out, nonce, msg, []byte(label))
}

// keyNames names keys by keyID, for failure messages.
func keyNames(keys [][]byte) string {
	var names []string
	for _, k := range keys {
		names = append(names, keyID(k))
	}
	return "[" + strings.Join(names, " ") + "]"
}
