package gossip

import "errors"

var (
	// ErrConfig is returned by Start for a Config it cannot use: an empty
	// node name, a bind address that is not one specific IP, a negative
	// timing knob. Nothing was started; fix the field the message names.
	// (Unusable keys give ErrInvalidKeys instead.)
	ErrConfig = errors.New("gossip: invalid config")

	// ErrInvalidKeys is returned by Start (for Config.Keys) and SetKeys
	// for a key list the table cannot use: no key, a key that is not
	// exactly KeySize bytes, or a key listed twice. Nothing was started or
	// changed; pass the raw keys the managers generated, the primary
	// first. The message never contains key material.
	ErrInvalidKeys = errors.New("gossip: invalid keys")

	// ErrBind is returned by Start when memberlist cannot listen on
	// Config.BindAddr (TCP and UDP): the address is not assigned to this
	// host or the port is taken. Nothing was started.
	ErrBind = errors.New("gossip: cannot listen on bind address")

	// ErrInvalidEndpoint is returned by Publish and Replace for an
	// endpoint that cannot be gossiped (an empty ID or network ID, a
	// missing task or VTEP address, a malformed MAC). Nothing was
	// published; fix the field the message names.
	ErrInvalidEndpoint = errors.New("gossip: invalid endpoint")

	// ErrEndpointTooLarge is returned by Publish and Replace for an
	// endpoint whose encoding does not fit in one gossip packet (too many
	// or too long aliases and names). Nothing was published.
	ErrEndpointTooLarge = errors.New("gossip: endpoint too large for a gossip packet")

	// ErrInvalidPeer is returned by Join for a peer that is not an IP
	// literal with an optional port ("192.0.2.7" or "192.0.2.7:7946").
	// Host names are refused so that joining never sends a DNS query.
	ErrInvalidPeer = errors.New("gossip: invalid peer address")

	// ErrJoin is returned by Join when no peer could be contacted. The
	// table keeps working alone; call Join again (the agent retries with
	// the addresses the managers hand out).
	ErrJoin = errors.New("gossip: could not join any peer")

	// ErrLeaveTimeout is returned by Leave when the leave message was not
	// sent to any peer within the timeout. The node has left all the same;
	// peers notice its departure by failure detection instead, a few
	// seconds later.
	ErrLeaveTimeout = errors.New("gossip: leave not confirmed in time")

	// ErrClosed is returned by Publish, Withdraw, Replace and Join after
	// Leave or Shutdown, and by Leave after Shutdown. Start a new Table to
	// come back.
	ErrClosed = errors.New("gossip: table has left or was shut down")
)
