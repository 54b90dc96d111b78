package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	mdns "github.com/miekg/dns"
)

// dialFunc opens a connection to an upstream resolver.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// errNoUpstream is why a forward fails when Config names no upstream.
var errNoUpstream = errors.New("no upstream resolver configured")

// errBusy is why a forward fails when too many are in flight.
var errBusy = errors.New("too many forwarded queries in flight")

// forwarder sends queries for names outside the cluster to the upstream
// resolvers.
type forwarder struct {
	upstreams []string
	timeout   time.Duration
	dial      dialFunc
	inflight  chan struct{} // a slot per forward in flight
	log       *slog.Logger
}

// forward asks the upstreams in order, within f.timeout in all, and
// returns the first usable answer (its Id is the caller's to set). An
// upstream that cannot be reached, times out, or answers SERVFAIL or
// REFUSED is followed by the next; if the last one answered SERVFAIL or
// REFUSED, that answer is returned. It errs when no upstream answered.
func (f *forwarder) forward(ctx context.Context, req *mdns.Msg) (*mdns.Msg, error) {
	if len(f.upstreams) == 0 {
		return nil, errNoUpstream
	}
	select {
	case f.inflight <- struct{}{}:
		defer func() { <-f.inflight }()
	default:
		return nil, errBusy
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	var last *mdns.Msg
	var errs []error
	for i, upstream := range f.upstreams {
		// Each upstream gets an equal share of what is left, so a silent
		// first upstream leaves time for the others.
		deadline, _ := ctx.Deadline()
		share := time.Until(deadline) / time.Duration(len(f.upstreams)-i)
		attemptCtx, attemptCancel := context.WithTimeout(ctx, share)
		resp, err := f.exchange(attemptCtx, upstream, req)
		attemptCancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", upstream, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if resp.Rcode == mdns.RcodeServerFailure || resp.Rcode == mdns.RcodeRefused {
			last = resp
			continue
		}
		return resp, nil
	}
	if last != nil {
		return last, nil
	}
	return nil, errors.Join(errs...)
}

// exchange asks one upstream over UDP and, if that answer is truncated,
// again over TCP. When the TCP retry fails the truncated answer is
// returned: the client sees TC and may retry itself.
func (f *forwarder) exchange(ctx context.Context, upstream string, req *mdns.Msg) (*mdns.Msg, error) {
	resp, err := f.exchangeOver(ctx, "udp", upstream, req)
	if err != nil || !resp.Truncated {
		return resp, err
	}
	full, err := f.exchangeOver(ctx, "tcp", upstream, req)
	if err != nil {
		f.log.Debug("dns: TCP retry of a truncated answer failed", "upstream", upstream, "name", questionName(req), "err", err)
		return resp, nil
	}
	return full, nil
}

// exchangeOver sends one query over one transport, with a fresh message
// Id, and waits for its answer until ctx ends.
func (f *forwarder) exchangeOver(ctx context.Context, network, upstream string, req *mdns.Msg) (*mdns.Msg, error) {
	conn, err := f.dial(ctx, network, upstream)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// The client library only takes deadlines from ctx: close the
	// connection when ctx is cancelled (Detach, Close) to stop waiting.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	query := req.Copy()
	query.Id = mdns.Id()
	client := mdns.Client{Net: network, Timeout: f.timeout}
	resp, _, err := client.ExchangeWithConnContext(ctx, query, &mdns.Conn{Conn: conn})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", network, ctx.Err())
		}
		return nil, fmt.Errorf("%s: %w", network, err)
	}
	return resp, nil
}

// questionName is the first question's name, for logs.
func questionName(m *mdns.Msg) string {
	if len(m.Question) == 0 {
		return ""
	}
	return m.Question[0].Name
}
