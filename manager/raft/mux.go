package raft

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
)

// raftConnPrefix is the first byte a Raft connection sends on the shared
// port. gRPC (HTTP/2) connections start with 'P' of the client preface.
const raftConnPrefix byte = 0xAF

// Mux splits one TCP listener between gRPC and Raft: a connection whose
// first byte is the Raft prefix goes to the Raft transport, every other
// connection to the gRPC server. One port per node keeps operators' firewall
// rules and join addresses simple.
type Mux struct {
	ln      net.Listener
	grpc    *chanListener
	advAddr net.Addr
	once    sync.Once

	mu   sync.Mutex
	raft *chanListener // the current Raft side; nil while no Raft runs
}

// NewMux starts splitting ln. advertise is the address other managers dial
// for Raft (the node's advertised address); nil means ln's address.
func NewMux(ln net.Listener, advertise net.Addr) *Mux {
	if advertise == nil {
		advertise = ln.Addr()
	}
	m := &Mux{
		ln:      ln,
		grpc:    newChanListener(ln.Addr()),
		advAddr: advertise,
	}
	go m.serve()
	return m
}

// GRPCListener returns the listener for the gRPC server.
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
	return &streamLayer{l: l}
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

// route reads the first byte (bounded by a deadline, so a silent peer
// cannot pin a goroutine) and hands the connection on.
func (m *Mux) route(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(c, 1)
	b, err := br.Peek(1)
	_ = c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return
	}
	if b[0] == raftConnPrefix {
		_, _ = br.Discard(1)
		r := m.raftSide()
		if r == nil {
			c.Close()
			return
		}
		r.deliver(&peekedConn{Conn: c, r: br})
		return
	}
	m.grpc.deliver(&peekedConn{Conn: c, r: br})
}

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

// streamLayer dials peers with the Raft prefix and accepts the mux's Raft
// connections.
type streamLayer struct {
	l *chanListener
}

func (s *streamLayer) Accept() (net.Conn, error) { return s.l.Accept() }
func (s *streamLayer) Close() error              { return s.l.Close() }
func (s *streamLayer) Addr() net.Addr            { return s.l.Addr() }

func (s *streamLayer) Dial(address hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{raftConnPrefix}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
