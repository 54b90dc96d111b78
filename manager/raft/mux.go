package raft

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
)

// ALPN protocols on the shared port: gRPC speaks HTTP/2 ("h2"), Raft its
// own.
const (
	ALPNGRPC = "h2"
	ALPNRaft = "shoal-raft/1"
)

// handshakeTimeout bounds a connection's TLS handshake, so a silent or
// slow peer cannot pin a goroutine.
const handshakeTimeout = 10 * time.Second

// tlsRecordHandshake is the first byte of a TLS connection (a handshake
// record); anything else is plaintext and is closed without an answer.
const tlsRecordHandshake = 0x16

// MuxConfig secures a Mux.
type MuxConfig struct {
	// TLS is the server side of the port; it must offer ALPNGRPC and
	// ALPNRaft and ask for client certificates.
	TLS *tls.Config
	// RaftClient is the client side for dialing other managers' Raft; it
	// must offer ALPNRaft, present a manager certificate and accept only
	// managers.
	RaftClient *tls.Config
	// AuthorizeRaft accepts or refuses the peer of an incoming Raft
	// connection (only managers of this cluster may speak Raft).
	AuthorizeRaft func(tls.ConnectionState) error
	// PeerID names the node behind a connection ("" for none), so that
	// Cut can close every connection of a node.
	PeerID func(tls.ConnectionState) string
}

// Mux serves one TCP port with TLS and splits it between gRPC and Raft
// by the ALPN protocol the client negotiated: every connection must be
// TLS (a plaintext one is closed without an answer), a Raft connection
// must come from a manager (AuthorizeRaft). One port per node keeps
// operators' firewall rules and join addresses simple.
type Mux struct {
	ln      net.Listener
	cfg     MuxConfig
	grpc    *chanListener
	advAddr net.Addr
	once    sync.Once

	mu    sync.Mutex
	raft  *chanListener // the current Raft side; nil while no Raft runs
	conns map[string]map[net.Conn]struct{}
}

// NewMux starts serving ln. advertise is the address other managers dial
// for Raft (the node's advertised address); nil means ln's address.
func NewMux(ln net.Listener, advertise net.Addr, cfg MuxConfig) *Mux {
	if advertise == nil {
		advertise = ln.Addr()
	}
	m := &Mux{
		ln:      ln,
		cfg:     cfg,
		grpc:    newChanListener(ln.Addr()),
		advAddr: advertise,
		conns:   map[string]map[net.Conn]struct{}{},
	}
	go m.serve()
	return m
}

// GRPCListener returns the listener for the gRPC server. It yields
// *tls.Conn values whose handshake is done.
func (m *Mux) GRPCListener() net.Listener { return m.grpc }

// StreamLayer returns a new Raft side as a hashicorp/raft stream layer,
// replacing any earlier one. Closing it (when its Raft server stops)
// leaves the mux running, so a node can start Raft again later, as when
// it is promoted after a demotion. Raft connections that arrive while no
// layer is open are closed.
func (m *Mux) StreamLayer() hraft.StreamLayer {
	l := newChanListener(m.advAddr)
	m.mu.Lock()
	old := m.raft
	m.raft = l
	m.mu.Unlock()
	if old != nil {
		old.close()
	}
	return &streamLayer{l: l, tls: m.cfg.RaftClient}
}

// Cut closes every open connection from the node id (Raft and gRPC, with
// their streams); used when the node is removed.
func (m *Mux) Cut(id string) int {
	m.mu.Lock()
	conns := m.conns[id]
	delete(m.conns, id)
	m.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	return len(conns)
}

func (m *Mux) raftSide() *chanListener {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.raft
}

// Close closes the underlying listener and both sides.
func (m *Mux) Close() error {
	var err error
	m.once.Do(func() {
		err = m.ln.Close()
		m.grpc.close()
		if r := m.raftSide(); r != nil {
			r.close()
		}
	})
	return err
}

func (m *Mux) serve() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			m.Close()
			return
		}
		go m.route(c)
	}
}

// route refuses plaintext, does the TLS handshake (bounded by a
// deadline) and hands the connection to its side.
func (m *Mux) route(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	br := bufio.NewReaderSize(c, 1)
	b, err := br.Peek(1)
	if err != nil || b[0] != tlsRecordHandshake {
		c.Close()
		return
	}
	tc := tls.Server(&peekedConn{Conn: c, r: br}, m.cfg.TLS)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	err = tc.HandshakeContext(ctx)
	cancel()
	_ = c.SetDeadline(time.Time{})
	if err != nil {
		c.Close()
		return
	}
	cs := tc.ConnectionState()
	var side *chanListener
	switch cs.NegotiatedProtocol {
	case ALPNRaft:
		if m.cfg.AuthorizeRaft == nil || m.cfg.AuthorizeRaft(cs) != nil {
			c.Close()
			return
		}
		side = m.raftSide()
	case ALPNGRPC:
		side = m.grpc
	}
	if side == nil {
		c.Close()
		return
	}
	var conn net.Conn = tc
	if m.cfg.PeerID != nil {
		if id := m.cfg.PeerID(cs); id != "" {
			conn = m.track(id, tc)
		}
	}
	side.deliver(conn)
}

// track remembers conn as one of node id's until it is closed.
func (m *Mux) track(id string, tc *tls.Conn) net.Conn {
	t := &trackedConn{Conn: tc}
	t.untrack = func() {
		m.mu.Lock()
		if set := m.conns[id]; set != nil {
			delete(set, t)
			if len(set) == 0 {
				delete(m.conns, id)
			}
		}
		m.mu.Unlock()
	}
	m.mu.Lock()
	if m.conns[id] == nil {
		m.conns[id] = map[net.Conn]struct{}{}
	}
	m.conns[id][t] = struct{}{}
	m.mu.Unlock()
	return t
}

// trackedConn is a TLS connection the mux can cut; it still exposes the
// TLS state for the gRPC credentials (TLSConn).
type trackedConn struct {
	net.Conn
	once    sync.Once
	untrack func()
}

func (t *trackedConn) Close() error {
	t.once.Do(t.untrack)
	return t.Conn.Close()
}

// TLSConn returns the underlying TLS connection.
func (t *trackedConn) TLSConn() *tls.Conn { return t.Conn.(*tls.Conn) }

// peekedConn is a connection whose first bytes sit in a buffered reader.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// chanListener is a net.Listener fed by the mux.
type chanListener struct {
	addr   net.Addr
	conns  chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) close() { l.closed.Do(func() { close(l.done) }) }

func (l *chanListener) Close() error { l.close(); return nil }

func (l *chanListener) Addr() net.Addr { return l.addr }

// streamLayer dials peers with TLS (ALPN Raft, a manager certificate) and
// accepts the mux's Raft connections.
type streamLayer struct {
	l   *chanListener
	tls *tls.Config
}

func (s *streamLayer) Accept() (net.Conn, error) { return s.l.Accept() }
func (s *streamLayer) Close() error              { return s.l.Close() }
func (s *streamLayer) Addr() net.Addr            { return s.l.Addr() }

func (s *streamLayer) Dial(address hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if s.tls == nil {
		return nil, errors.New("raft: no TLS configuration to dial managers with")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := tls.Dialer{Config: s.tls}
	return d.DialContext(ctx, "tcp", string(address))
}
