package dns

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// ResolvConf returns the /etc/resolv.conf of a container, made from the
// host's: "nameserver 127.0.0.11", the host's search domains (a host
// "domain" line counts as its search list, as in glibc: the last of
// "search" and "domain" wins), and "options ndots:0" followed by the host's
// other options (its ndots is dropped), as Docker writes it. ndots:0 makes
// a client try a single-label name such as "web" as is first.
func ResolvConf(hostResolvConf []byte) []byte {
	var search []string
	var options []string
	scanResolvConf(hostResolvConf, func(key string, fields []string) {
		switch key {
		case "search", "domain":
			search = append(search[:0], fields...)
		case "options":
			for _, opt := range fields {
				if !strings.HasPrefix(opt, "ndots:") {
					options = append(options, opt)
				}
			}
		}
	})
	var b bytes.Buffer
	b.WriteString("# Written by shoal: the embedded DNS server answers cluster names and forwards the rest to the host's resolvers.\n")
	b.WriteString("nameserver 127.0.0.11\n")
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	fmt.Fprintf(&b, "options %s\n", strings.Join(append([]string{"ndots:0"}, options...), " "))
	return b.Bytes()
}

// WriteResolvConf writes ResolvConf(hostResolvConf) to path with mode
// 0644, atomically: a reader sees the old file or the new one, never part
// of one. It replaces the file (a new inode), so write it before it is
// bind-mounted into the container: a running container that mounted the
// old file keeps seeing it. It errs when the directory is not writable.
func WriteResolvConf(path string, hostResolvConf []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".resolv.conf-*")
	if err != nil {
		return fmt.Errorf("write resolv.conf %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if _, err := tmp.Write(ResolvConf(hostResolvConf)); err != nil {
		tmp.Close()
		return fmt.Errorf("write resolv.conf %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write resolv.conf %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write resolv.conf %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write resolv.conf %s: %w", path, err)
	}
	return nil
}

// UpstreamsFromResolvConf returns the nameservers of a host's
// resolv.conf as "IP:53", in file order, without duplicates, for
// Config.Upstreams. Lines that are not valid IP addresses are skipped.
//
// Loopback nameservers (such as systemd-resolved's 127.0.0.53) are kept:
// they are unreachable from a container, but the Server forwards from the
// agent's own namespace (the host's), where they answer. An empty result
// means names outside the cluster get SERVFAIL.
func UpstreamsFromResolvConf(b []byte) []string {
	var out []string
	seen := make(map[string]bool)
	scanResolvConf(b, func(key string, fields []string) {
		if key != "nameserver" || len(fields) == 0 {
			return
		}
		addr, err := netip.ParseAddr(fields[0])
		if err != nil {
			return
		}
		addr = addr.Unmap()
		upstream := net.JoinHostPort(addr.String(), "53")
		if !seen[upstream] {
			seen[upstream] = true
			out = append(out, upstream)
		}
	})
	return out
}

// scanResolvConf calls fn with the keyword and the fields of every line
// of a resolv.conf that is not blank or a comment.
func scanResolvConf(b []byte, fn func(key string, fields []string)) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		fn(fields[0], fields[1:])
	}
}
