package dns

import "errors"

var (
	// ErrInvalidView is returned by Attach and SetView for a View with a
	// record that cannot be served (an empty or malformed name, a task
	// without an address). Nothing is changed then; fix the record.
	ErrInvalidView = errors.New("dns: invalid view")

	// ErrNotAttached is returned by SetView for a container that is not
	// attached: Attach it first.
	ErrNotAttached = errors.New("dns: container not attached")

	// ErrNamespace is returned by Attach when the container's network
	// namespace cannot be opened or entered (a wrong or stale path), and by
	// New when Config.UpstreamNetNS cannot be opened.
	ErrNamespace = errors.New("dns: network namespace unusable")

	// ErrListen is returned by Attach when 127.0.0.11:53 cannot be bound
	// inside the container's namespace, most often because another
	// resolver already listens there.
	ErrListen = errors.New("dns: cannot listen on 127.0.0.11:53")

	// ErrClosed is returned by Attach and SetView after Close.
	ErrClosed = errors.New("dns: server closed")

	// ErrConfig is returned by New for a Config it cannot use (an upstream
	// that is not host:port with a literal IP).
	ErrConfig = errors.New("dns: invalid config")
)
