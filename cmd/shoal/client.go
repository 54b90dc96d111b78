package main

// The connection from the command line to the manager API: where it is,
// how it is secured, and how its answers are turned into what a user reads.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/local"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/proto/api"
)

const (
	// defaultDataDir is where a node keeps its state unless told otherwise.
	defaultDataDir = "/var/lib/shoal"
	// socketName is the file name of the daemon's API unix socket inside
	// its data directory.
	socketName = "shoal.sock"

	// hostEnv names the environment variable that says where the API is
	// when --host is not given.
	hostEnv = "SHOAL_HOST"
	// defaultTimeout bounds connecting and each RPC unless --timeout says
	// otherwise.
	defaultTimeout = 30 * time.Second
	// staleHeader is the response header a manager sets when it answered a
	// read from local state because it could not reach a Raft leader; its
	// value is a sentence for the user.
	staleHeader = "shoal-stale"
	// maxRecvMsgSize lets large listings through (gRPC's default is 4 MiB).
	maxRecvMsgSize = 64 << 20
)

// endpoint is where the manager API listens.
type endpoint struct {
	// network is "unix" or "tcp".
	network string
	// address is a socket path (unix) or HOST:PORT (tcp).
	address string
}

// String is the endpoint as a user would write it for --host.
func (e endpoint) String() string {
	if e.network == "unix" {
		return "unix://" + e.address
	}
	return e.address
}

// resolveEndpoint picks the API endpoint: the --host flag, else the
// SHOAL_HOST environment variable, else the local daemon's socket.
func resolveEndpoint(flagValue string, getenv func(string) string) (endpoint, error) {
	if flagValue != "" {
		return parseHost(flagValue, "--host")
	}
	if v := getenv(hostEnv); v != "" {
		return parseHost(v, hostEnv)
	}
	return endpoint{network: "unix", address: defaultDataDir + "/" + socketName}, nil
}

// parseHost reads HOST:PORT, tcp://HOST:PORT or unix:///PATH; source
// names where the value came from, for the error message.
func parseHost(s, source string) (endpoint, error) {
	bad := func(why string) error {
		return fmt.Errorf("invalid %s %q: %s (expected HOST:PORT or unix:///PATH)", source, s, why)
	}
	if path, ok := strings.CutPrefix(s, "unix://"); ok {
		if path == "" {
			return endpoint{}, bad("no socket path")
		}
		return endpoint{network: "unix", address: path}, nil
	}
	addr := strings.TrimPrefix(s, "tcp://")
	if strings.Contains(addr, "://") {
		return endpoint{}, bad("unknown scheme")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return endpoint{}, bad("no port")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return endpoint{}, bad("the port is not a number from 1 to 65535")
	}
	if host == "" {
		addr = net.JoinHostPort("localhost", port)
	}
	return endpoint{network: "tcp", address: addr}, nil
}

// certPathEnv names the folder holding ca.pem, cert.pem and key.pem for
// the API over TCP, as DOCKER_CERT_PATH does for docker.
const certPathEnv = "SHOAL_CERT_PATH"

// tlsFiles are where the client's certificate, key and CA come from.
type tlsFiles struct {
	ca, cert, key string
}

// resolveTLSFiles picks the files: each flag, else the file of that name
// in $SHOAL_CERT_PATH. An incomplete set is an error that says how to get
// one; none at all is a zero value.
func resolveTLSFiles(flags tlsFiles, getenv func(string) string) (tlsFiles, error) {
	if dir := getenv(certPathEnv); dir != "" {
		for _, f := range []struct {
			v    *string
			name string
		}{{&flags.ca, ca.ClientCAFile}, {&flags.cert, ca.ClientCertFile}, {&flags.key, ca.ClientKeyFile}} {
			if *f.v == "" {
				*f.v = filepath.Join(dir, f.name)
			}
		}
	}
	set := 0
	for _, v := range []string{flags.ca, flags.cert, flags.key} {
		if v != "" {
			set++
		}
	}
	if set != 0 && set != 3 {
		return tlsFiles{}, fmt.Errorf("give all of --tlscacert, --tlscert and --tlskey (or %s=DIR holding ca.pem, cert.pem and key.pem)", certPathEnv)
	}
	return flags, nil
}

// errNeedCertificate says how to get a client certificate.
var errNeedCertificate = fmt.Errorf("the API over TCP needs a client certificate of the cluster: on a manager, run `shoal cluster ca issue-client --name NAME --out DIR`, copy DIR here, and pass --tlscacert DIR/ca.pem --tlscert DIR/cert.pem --tlskey DIR/key.pem or set %s=DIR; on a node itself, use its local socket (the default)", certPathEnv)

// transportCredentials is the one place that decides how the connection
// to the API is secured: the local unix socket (root only) needs none;
// over TCP the client presents its certificate and accepts only a
// manager of the cluster whose CA it was given.
func transportCredentials(ep endpoint, files tlsFiles) (credentials.TransportCredentials, error) {
	if ep.network == "unix" {
		return local.NewCredentials(), nil
	}
	if files.cert == "" {
		return nil, errNeedCertificate
	}
	creds, err := ca.ReadFiles(files.cert, files.key, files.ca)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	return credentials.NewTLS(creds.ClientConfig(ca.ExpectManager, "h2")), nil
}

// dialRecorder dials the endpoint and remembers how the last attempt
// went, so a failed RPC can tell "the API is not there" from "the API
// said no".
type dialRecorder struct {
	ep      endpoint
	timeout time.Duration

	mu        sync.Mutex
	connected bool
	lastErr   error
}

// dial is the gRPC context dialer; it ignores the address gRPC passes and
// dials the endpoint itself, so unix and tcp take the same path.
func (d *dialRecorder) dial(ctx context.Context, _ string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.timeout}
	conn, err := nd.DialContext(ctx, d.ep.network, d.ep.address)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.lastErr = err
	} else {
		d.connected = true
	}
	return conn, err
}

// state reports whether a connection was ever made, and the last dial error.
func (d *dialRecorder) state() (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.connected, d.lastErr
}

// client is a connection to the Control API for one command.
type client struct {
	api     api.ControlClient
	conn    *grpc.ClientConn
	ep      endpoint
	timeout time.Duration
	stderr  io.Writer
	dialer  *dialRecorder

	warnMu sync.Mutex
	warned bool
}

// dial prepares a client of the API at ep; the connection is made by the
// first RPC. Warnings (stale reads) go to stderr.
func dial(ep endpoint, files tlsFiles, timeout time.Duration, stderr io.Writer) (*client, error) {
	if timeout <= 0 {
		return nil, fmt.Errorf("invalid argument %q for --timeout: must be more than zero (examples: 10s, 1m)", timeout)
	}
	tc, err := transportCredentials(ep, files)
	if err != nil {
		return nil, err
	}
	d := &dialRecorder{ep: ep, timeout: timeout}
	authority := ep.address
	if ep.network == "unix" {
		authority = "localhost"
	}
	conn, err := grpc.NewClient("passthrough:///"+authority,
		grpc.WithTransportCredentials(tc),
		grpc.WithContextDialer(d.dial),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsgSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the shoal API at %s: %v", ep, err)
	}
	return &client{api: api.NewControlClient(conn), conn: conn, ep: ep, timeout: timeout, stderr: stderr, dialer: d}, nil
}

// Close releases the connection.
func (c *client) Close() error { return c.conn.Close() }

// rpcFunc is the shape of every generated Control client method.
type rpcFunc[Req, Resp any] func(context.Context, Req, ...grpc.CallOption) (Resp, error)

// read runs a read RPC within the client's timeout. When the manager
// answered from local state without a leader, it prints the manager's
// warning to stderr (once per command).
func read[Req, Resp any](ctx context.Context, c *client, rpc rpcFunc[Req, Resp], req Req) (Resp, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var md metadata.MD
	resp, err := rpc(ctx, req, grpc.Header(&md))
	c.warnIfStale(md)
	if err != nil {
		var zero Resp
		return zero, c.convert(ctx, err)
	}
	return resp, nil
}

// write runs a write RPC within the client's timeout. Writes are never
// served stale: without a leader they fail with Unavailable.
func write[Req, Resp any](ctx context.Context, c *client, rpc rpcFunc[Req, Resp], req Req) (Resp, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := rpc(ctx, req)
	if err != nil {
		var zero Resp
		return zero, c.convert(ctx, err)
	}
	return resp, nil
}

// warnIfStale prints "WARNING: <sentence>" when the header says the
// answer was read from local state.
func (c *client) warnIfStale(md metadata.MD) {
	v := md.Get(staleHeader)
	if len(v) == 0 || v[0] == "" {
		return
	}
	c.warnMu.Lock()
	defer c.warnMu.Unlock()
	if c.warned {
		return
	}
	c.warned = true
	fmt.Fprintf(c.stderr, "WARNING: %s\n", v[0])
}

// convert turns an RPC error into what the user reads: the server's own
// message (it already says what to change), or, when no connection was
// ever made, that the API cannot be reached and how to point at it.
func (c *client) convert(ctx context.Context, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	connected, dialErr := c.dialer.state()
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded:
		if !connected {
			why := st.Message()
			if dialErr != nil {
				why = dialErr.Error()
			} else if st.Code() == codes.DeadlineExceeded {
				why = fmt.Sprintf("no connection within %s", c.timeout)
			}
			return &unreachableError{ep: c.ep, why: why}
		}
		if st.Code() == codes.DeadlineExceeded && ctx.Err() != nil {
			return fmt.Errorf("the shoal API at %s did not answer within %s (raise --timeout if the cluster is busy)", c.ep, c.timeout)
		}
	}
	return &apiError{st: st}
}

// apiError is an error the API answered with. Its text is the server's
// message alone, without gRPC's "rpc error: code = ... desc =" wrapper;
// status.Code still sees the code.
type apiError struct {
	st *status.Status
}

// Error returns the server's message.
func (e *apiError) Error() string {
	if m := e.st.Message(); m != "" {
		return m
	}
	return "the shoal API failed with code " + e.st.Code().String()
}

// GRPCStatus lets status.Code and status.FromError see the status.
func (e *apiError) GRPCStatus() *status.Status { return e.st }

// unreachableError means no connection to the API could be made.
type unreachableError struct {
	ep  endpoint
	why string
}

// Error says where the client looked and how to point it elsewhere.
func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach the shoal API at %s: %s (is the daemon running? set --host or %s)", e.ep, e.why, hostEnv)
}

// GRPCStatus reports Unavailable, so retry loops do not retry it.
func (e *unreachableError) GRPCStatus() *status.Status {
	return status.New(codes.Unavailable, e.Error())
}

// isCode reports whether err carries the gRPC code.
func isCode(err error, code codes.Code) bool {
	var s interface{ GRPCStatus() *status.Status }
	return errors.As(err, &s) && s.GRPCStatus().Code() == code
}
