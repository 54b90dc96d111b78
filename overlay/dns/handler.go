package dns

import (
	"math/rand/v2"
	"net"
	"net/netip"

	mdns "github.com/miekg/dns"
)

// ednsSize is the EDNS0 payload size the server advertises and the
// largest UDP query it reads.
const ednsSize = 1232

// serveDNS answers one query of container c.
func (s *Server) serveDNS(c *container, w mdns.ResponseWriter, req *mdns.Msg) {
	resp := s.answer(c, req)
	resp.RecursionAvailable = true
	if opt := req.IsEdns0(); opt != nil && resp.IsEdns0() == nil {
		resp.SetEdns0(ednsSize, false)
	}
	resp.Truncate(replyLimit(w, req))
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("dns: write answer", "container", c.id, "name", questionName(req), "err", err)
	}
}

// answer builds the reply to req: from the container's View for cluster
// names, from the upstreams for the rest.
func (s *Server) answer(c *container, req *mdns.Msg) *mdns.Msg {
	if len(req.Question) != 1 || req.Opcode != mdns.OpcodeQuery {
		return new(mdns.Msg).SetRcode(req, mdns.RcodeNotImplemented)
	}
	q := req.Question[0]
	if q.Qclass == mdns.ClassINET || q.Qclass == mdns.ClassANY {
		set, result := c.view.Load().lookup(q.Name)
		switch result {
		case localName:
			return localAnswer(req, q, set)
		case unknownClusterName:
			resp := new(mdns.Msg).SetRcode(req, mdns.RcodeNameError)
			resp.Authoritative = true
			return resp
		}
	}
	resp, err := s.fwd.forward(c.ctx, req)
	if err != nil {
		s.log.Debug("dns: forward failed", "container", c.id, "name", q.Name, "err", err)
		return new(mdns.Msg).SetRcode(req, mdns.RcodeServerFailure)
	}
	resp.Id = req.Id
	return resp
}

// localAnswer answers a cluster name from its address set, in a fresh
// random order, with TTL 0 (see the package doc).
func localAnswer(req *mdns.Msg, q mdns.Question, set *addrSet) *mdns.Msg {
	resp := new(mdns.Msg).SetReply(req)
	resp.Authoritative = true
	if q.Qtype == mdns.TypeA || q.Qtype == mdns.TypeANY {
		for _, addr := range shuffled(set.v4) {
			resp.Answer = append(resp.Answer, &mdns.A{
				Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET},
				A:   addr.AsSlice(),
			})
		}
	}
	if q.Qtype == mdns.TypeAAAA || q.Qtype == mdns.TypeANY {
		for _, addr := range shuffled(set.v6) {
			resp.Answer = append(resp.Answer, &mdns.AAAA{
				Hdr:  mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeAAAA, Class: mdns.ClassINET},
				AAAA: addr.AsSlice(),
			})
		}
	}
	return resp
}

// shuffled returns addrs in a fresh random order, leaving addrs alone.
func shuffled(addrs []netip.Addr) []netip.Addr {
	if len(addrs) < 2 {
		return addrs
	}
	out := append([]netip.Addr(nil), addrs...)
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// replyLimit is the largest reply the client takes on this transport:
// over UDP its EDNS0 size (512 without EDNS0), over TCP 64 KiB.
func replyLimit(w mdns.ResponseWriter, req *mdns.Msg) int {
	if _, tcp := w.RemoteAddr().(*net.TCPAddr); tcp {
		return mdns.MaxMsgSize
	}
	if opt := req.IsEdns0(); opt != nil {
		return int(opt.UDPSize())
	}
	return mdns.MinMsgSize
}
