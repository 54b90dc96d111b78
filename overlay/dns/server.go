package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/vishvananda/netns"
)

// Defaults for the zero values of Config.
const (
	// DefaultForwardTimeout bounds one forwarded query, all upstreams
	// included; below glibc's 5 s per-try timeout, so the container gets
	// SERVFAIL rather than a timeout of its own.
	DefaultForwardTimeout = 2 * time.Second
	// DefaultMaxForwards bounds the forwarded queries in flight on one
	// host; past it a query gets SERVFAIL at once.
	DefaultMaxForwards = 1024
)

// shutdownGrace bounds how long Detach waits for queries in flight.
const shutdownGrace = 5 * time.Second

// Config configures a Server.
type Config struct {
	// Upstreams are the resolvers for names outside the cluster, as
	// "IP:port" (see UpstreamsFromResolvConf), tried in order. With none,
	// such names get SERVFAIL.
	Upstreams []string
	// ForwardTimeout bounds one forwarded query, every upstream and the
	// TCP retry included. Zero means DefaultForwardTimeout.
	ForwardTimeout time.Duration
	// UpstreamNetNS is the path of the network namespace in which
	// forwarding sockets are opened. Empty means the agent's own (the
	// host's), the one that reaches the host's resolvers.
	UpstreamNetNS string
	// MaxForwards bounds the forwarded queries in flight. Zero means
	// DefaultMaxForwards.
	MaxForwards int
	// Logger receives failures of single queries at debug level and
	// attachments at info level. Nil discards them.
	Logger *slog.Logger
}

// Server is the DNS server of one host: it listens on 127.0.0.11:53 in
// every attached container's network namespace. Its methods are safe for
// concurrent use.
type Server struct {
	log        *slog.Logger
	fwd        *forwarder
	upstreamNS netns.NsHandle // open when Config.UpstreamNetNS is set

	mu         sync.Mutex
	closed     bool
	containers map[string]*container
}

// container is one attached container.
type container struct {
	id     string
	nsPath string
	nsID   string // identity of the namespace the sockets live in
	view   atomic.Pointer[index]
	ctx    context.Context // cancelled on Detach: stops forwards in flight
	cancel context.CancelFunc
	udp    *mdns.Server
	tcp    *mdns.Server
}

// New returns a Server with no container attached. It errs with ErrConfig
// for an upstream that is not "IP:port", and with ErrNamespace when
// Config.UpstreamNetNS cannot be opened.
func New(cfg Config) (*Server, error) {
	for _, upstream := range cfg.Upstreams {
		if _, err := netip.ParseAddrPort(upstream); err != nil {
			return nil, fmt.Errorf("%w: upstream %q: want IP:port, such as 192.0.2.53:53: %v", ErrConfig, upstream, err)
		}
	}
	if cfg.ForwardTimeout < 0 || cfg.MaxForwards < 0 {
		return nil, fmt.Errorf("%w: ForwardTimeout and MaxForwards must not be negative", ErrConfig)
	}
	if cfg.ForwardTimeout == 0 {
		cfg.ForwardTimeout = DefaultForwardTimeout
	}
	if cfg.MaxForwards == 0 {
		cfg.MaxForwards = DefaultMaxForwards
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		log:        log,
		upstreamNS: netns.None(),
		containers: make(map[string]*container),
	}
	var dialer net.Dialer
	dial := dialFunc(dialer.DialContext)
	if cfg.UpstreamNetNS != "" {
		ns, err := netns.GetFromPath(cfg.UpstreamNetNS)
		if err != nil {
			return nil, fmt.Errorf("%w: upstream namespace %s: %v", ErrNamespace, cfg.UpstreamNetNS, err)
		}
		s.upstreamNS = ns
		dial = nsDialer{ns: ns}.DialContext
	}
	s.fwd = &forwarder{
		upstreams: append([]string(nil), cfg.Upstreams...),
		timeout:   cfg.ForwardTimeout,
		dial:      dial,
		inflight:  make(chan struct{}, cfg.MaxForwards),
		log:       log,
	}
	return s, nil
}

// Attach starts serving container id inside the network namespace at
// nsPath, with the records of v; it returns once both sockets answer.
// It brings the namespace's loopback up if it is down.
//
// Attach is idempotent: for an id already attached to the same namespace
// it only replaces the View (as SetView). For an id attached to another
// namespace (the path now names a new one) it moves the sockets there.
// It errs with ErrInvalidView (nothing changed), ErrNamespace, ErrListen
// (then the id is not attached) or ErrClosed.
func (s *Server) Attach(id, nsPath string, v View) error {
	ix, err := compile(v)
	if err != nil {
		return fmt.Errorf("attach %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("attach %s: %w", id, ErrClosed)
	}
	if old, ok := s.containers[id]; ok {
		if sameNamespace(old.nsID, nsPath) {
			old.view.Store(ix)
			return nil
		}
		delete(s.containers, id)
		if err := old.stop(); err != nil {
			s.log.Warn("dns: stop the resolver of a replaced namespace", "container", id, "err", err)
		}
	}

	pc, l, nsID, err := listenIn(nsPath)
	if err != nil {
		return fmt.Errorf("attach %s: %w", id, err)
	}
	c := &container{id: id, nsPath: nsPath, nsID: nsID}
	c.view.Store(ix)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	handler := mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) { s.serveDNS(c, w, req) })
	c.udp = &mdns.Server{PacketConn: pc, Handler: handler, UDPSize: mdns.DefaultMsgSize}
	c.tcp = &mdns.Server{Listener: l, Handler: handler}
	if err := c.start(); err != nil {
		c.cancel()
		pc.Close()
		l.Close()
		return fmt.Errorf("attach %s: %w: serve: %v", id, ErrListen, err)
	}
	s.containers[id] = c
	s.log.Info("dns: attached", "container", id, "netns", nsPath)
	return nil
}

// sameNamespace reports whether nsPath still names the namespace nsID.
func sameNamespace(nsID, nsPath string) bool {
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return false
	}
	defer ns.Close()
	return ns.UniqueId() == nsID
}

// start serves both sockets and returns once both serve loops run.
func (c *container) start() error {
	var errs []error
	for _, srv := range []*mdns.Server{c.udp, c.tcp} {
		started := make(chan struct{})
		failed := make(chan error, 1)
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { failed <- srv.ActivateAndServe() }()
		select {
		case <-started:
		case err := <-failed:
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		c.stop()
		return errors.Join(errs...)
	}
	return nil
}

// stop cancels the container's forwards in flight and closes its
// sockets, waiting a bounded time for answers being written.
func (c *container) stop() error {
	c.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	var errs []error
	for _, srv := range []*mdns.Server{c.udp, c.tcp} {
		if err := srv.ShutdownContext(ctx); err != nil && !isNotStarted(err) {
			errs = append(errs, err)
		}
	}
	// ShutdownContext closes the UDP socket itself; close both again in
	// case a serve loop never started.
	if c.udp.PacketConn != nil {
		c.udp.PacketConn.Close()
	}
	if c.tcp.Listener != nil {
		c.tcp.Listener.Close()
	}
	return errors.Join(errs...)
}

// isNotStarted recognises the error of shutting down a server whose serve
// loop never ran.
func isNotStarted(err error) bool {
	return err != nil && err.Error() == "dns: server not started"
}

// SetView replaces the records of container id in one step: the next
// query sees all of v and nothing of the View before. It errs with
// ErrInvalidView (nothing changed), ErrNotAttached or ErrClosed.
func (s *Server) SetView(id string, v View) error {
	ix, err := compile(v)
	if err != nil {
		return fmt.Errorf("set view of %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("set view of %s: %w", id, ErrClosed)
	}
	c, ok := s.containers[id]
	if !ok {
		return fmt.Errorf("set view of %s: %w", id, ErrNotAttached)
	}
	c.view.Store(ix)
	return nil
}

// Detach stops serving container id and closes its sockets: once it
// returns, 127.0.0.11:53 no longer answers in that namespace. Forwards in
// flight for it are abandoned. Detaching an id that is not attached does
// nothing. It errs only when a socket failed to close cleanly; the
// container is detached all the same. Detach every container whose
// namespace goes away: the sockets hold a reference to the namespace and
// keep it alive until then.
func (s *Server) Detach(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.containers[id]
	if !ok {
		return nil
	}
	delete(s.containers, id)
	if err := c.stop(); err != nil {
		return fmt.Errorf("detach %s: %w", id, err)
	}
	s.log.Info("dns: detached", "container", id)
	return nil
}

// Attached returns the ids of the attached containers, in no order: what
// a restarted or reconciling agent compares with what should be attached.
func (s *Server) Attached() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.containers))
	for id := range s.containers {
		ids = append(ids, id)
	}
	return ids
}

// Close detaches every container and releases the server's resources.
// Attach and SetView fail with ErrClosed afterwards; Close again does
// nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for id, c := range s.containers {
		delete(s.containers, id)
		if err := c.stop(); err != nil {
			errs = append(errs, fmt.Errorf("detach %s: %w", id, err))
		}
	}
	if s.upstreamNS.IsOpen() {
		if err := s.upstreamNS.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
