package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// Runtimes a lab's hosts can run tasks with.
const (
	// RuntimeContainerd runs tasks as containers through a containerd per
	// host (the default).
	RuntimeContainerd = "containerd"
	// RuntimeSimulated runs no containerd; tasks pretend to run.
	RuntimeSimulated = "simulated"
)

// APIPort is the TCP port every host's daemon listens on for the API and
// Raft, on its underlay address.
const APIPort = 4242

// RegistryPort is the port of the registry on the underlay.
const RegistryPort = 5000

// DefaultUnderlay is the underlay subnet: .1 is the bridge, .2 the
// registry, host N is .10+N.
var DefaultUnderlay = netip.MustParsePrefix("172.29.0.0/24")

// Config describes a lab. Name, Dir and Shoal are required.
type Config struct {
	// Name prefixes every namespace and containerd namespace of the lab:
	// 1 to 12 characters from [a-z0-9], starting with a letter.
	Name string `json:"name"`
	// Dir is the lab's folder: its description NAME.json and one folder
	// per host (data, containerd state, logs). Keep it short: unix socket
	// paths below it must fit in 108 bytes.
	Dir string `json:"dir"`
	// Hosts is the number of hosts (default 3); the first Managers of them
	// are managers (default 1, at most Hosts).
	Hosts    int `json:"hosts"`
	Managers int `json:"managers"`
	// Shoal is the shoal binary every host runs.
	Shoal string `json:"shoal"`
	// ToolsBin holds containerd, containerd-shim-runc-v2 and registry
	// (runc comes from PATH). Needed unless Runtime is simulated and
	// NoRegistry is set.
	ToolsBin string `json:"tools_bin,omitempty"`
	// Runtime is RuntimeContainerd (default) or RuntimeSimulated.
	Runtime string `json:"runtime"`
	// NoRegistry skips the underlay registry.
	NoRegistry bool `json:"no_registry,omitempty"`
	// HeartbeatPeriod, if set, is passed to every daemon as
	// --heartbeat-period.
	HeartbeatPeriod time.Duration `json:"heartbeat_period,omitempty"`
	// LogLevel is the daemons' --log-level (default info).
	LogLevel string `json:"log_level,omitempty"`
	// DaemonArgs are extra flags for every `shoal daemon`.
	DaemonArgs []string `json:"daemon_args,omitempty"`
	// Underlay is the underlay subnet (default DefaultUnderlay), a /24 or
	// larger.
	Underlay netip.Prefix `json:"underlay"`
	// Owner is the PID of the process that owns the lab; 0 means nobody
	// (a playground, kept until it is taken down). Sweep tears down labs
	// whose owner has exited.
	Owner int `json:"owner,omitempty"`
	// OwnerStart is the owner's start time (clock ticks since boot, from
	// /proc/PID/stat), so that a reused PID is not taken for the owner.
	OwnerStart uint64 `json:"owner_start,omitempty"`
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,11}$`)

// ErrBadConfig is wrapped by the errors of a Config that cannot work.
var ErrBadConfig = errors.New("lab: bad config")

// withDefaults validates c and fills in its defaults.
func (c Config) withDefaults() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return c, fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(format, args...))
	}
	if !nameRE.MatchString(c.Name) {
		return bad("name %q: use 1 to 12 characters from a-z and 0-9, starting with a letter", c.Name)
	}
	if c.Dir == "" {
		return bad("no folder (Dir) given")
	}
	abs, err := filepath.Abs(c.Dir)
	if err != nil {
		return bad("folder %q: %v", c.Dir, err)
	}
	c.Dir = abs
	if len(c.Dir) > 60 {
		return bad("folder %q is longer than 60 bytes: unix socket paths below it would not fit", c.Dir)
	}
	if c.Hosts == 0 {
		c.Hosts = 3
	}
	if c.Managers == 0 {
		c.Managers = 1
	}
	if c.Hosts < 1 || c.Hosts > 200 {
		return bad("%d hosts: use 1 to 200", c.Hosts)
	}
	if c.Managers < 1 || c.Managers > c.Hosts {
		return bad("%d managers for %d hosts: use 1 to %d", c.Managers, c.Hosts, c.Hosts)
	}
	if c.Shoal == "" {
		return bad("no shoal binary given")
	}
	if fi, err := os.Stat(c.Shoal); err != nil || fi.Mode()&0o111 == 0 {
		return bad("shoal binary %q is not an executable file (build it with `make build`)", c.Shoal)
	}
	switch c.Runtime {
	case "":
		c.Runtime = RuntimeContainerd
	case RuntimeContainerd, RuntimeSimulated:
	default:
		return bad("runtime %q: use %s or %s", c.Runtime, RuntimeContainerd, RuntimeSimulated)
	}
	var need []string
	if c.Runtime == RuntimeContainerd {
		need = append(need, "containerd", "containerd-shim-runc-v2")
	}
	if !c.NoRegistry {
		need = append(need, "registry")
	}
	for _, tool := range need {
		p := filepath.Join(c.ToolsBin, tool)
		if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
			return bad("%s not found in tools folder %q: install it with `deploy/tools.sh runtime`", tool, c.ToolsBin)
		}
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if !c.Underlay.IsValid() {
		c.Underlay = DefaultUnderlay
	}
	if !c.Underlay.Addr().Is4() || c.Underlay.Bits() > 24 {
		return bad("underlay %s: use an IPv4 subnet of /24 or larger", c.Underlay)
	}
	c.Underlay = c.Underlay.Masked()
	return c, nil
}

// statePath is where a lab's description is kept.
func statePath(dir, name string) string { return filepath.Join(dir, name+".json") }

// underlayAddr returns the n-th address of the underlay (n ≥ 1).
func (c Config) underlayAddr(n int) netip.Addr {
	a := c.Underlay.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// bridgeAddr is the underlay bridge's own address (.1).
func (c Config) bridgeAddr() netip.Addr { return c.underlayAddr(1) }

// registryAddr is the registry's underlay address (.2).
func (c Config) registryAddr() netip.Addr { return c.underlayAddr(2) }

// hostAddr is host n's underlay address (.10+n).
func (c Config) hostAddr(n int) netip.Addr { return c.underlayAddr(10 + n) }

// underlayNS is the name of the underlay's network namespace.
func (c Config) underlayNS() string { return c.Name + "-ul" }

// hostNS is the name of host n's network namespace, also its containerd
// namespace.
func (c Config) hostNS(n int) string { return fmt.Sprintf("%s-h%d", c.Name, n) }
