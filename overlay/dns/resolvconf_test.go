package dns

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func ExampleResolvConf() {
	fmt.Print(string(ResolvConf([]byte("nameserver 127.0.0.53\nsearch corp.example\noptions edns0 ndots:2 trust-ad\n"))))
	// Output:
	// # Written by shoal: the embedded DNS server answers cluster names and forwards the rest to the host's resolvers.
	// nameserver 127.0.0.11
	// search corp.example
	// options ndots:0 edns0 trust-ad
}

func TestResolvConf(t *testing.T) {
	tests := []struct {
		name, host string
		want       []string // lines after the comment
	}{
		{"empty host file", "", []string{"nameserver 127.0.0.11", "options ndots:0"}},
		{"search and comments", "# hi\n; there\nnameserver 10.0.0.1 # x\nsearch a.example b.example\n",
			[]string{"nameserver 127.0.0.11", "search a.example b.example", "options ndots:0"}},
		{"domain alone is the search list", "domain corp.example\n",
			[]string{"nameserver 127.0.0.11", "search corp.example", "options ndots:0"}},
		{"last of search and domain wins", "search a.example\ndomain b.example\n",
			[]string{"nameserver 127.0.0.11", "search b.example", "options ndots:0"}},
		{"host ndots dropped, other options kept", "options ndots:5 timeout:2\noptions rotate\n",
			[]string{"nameserver 127.0.0.11", "options ndots:0 timeout:2 rotate"}},
	}
	for _, tt := range tests {
		lines := strings.Split(strings.TrimSpace(string(ResolvConf([]byte(tt.host)))), "\n")
		if !strings.HasPrefix(lines[0], "#") || !slices.Equal(lines[1:], tt.want) {
			t.Errorf("%s: got\n%s\nwant %q", tt.name, strings.Join(lines, "\n"), tt.want)
		}
	}
}

func TestWriteResolvConf(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	host := []byte("nameserver 10.0.0.1\nsearch corp.example\n")
	for range 2 { // again over an existing file
		if err := WriteResolvConf(path, host); err != nil {
			t.Fatalf("WriteResolvConf: %v", err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(ResolvConf(host)) {
			t.Errorf("file holds %q, want %q", got, ResolvConf(host))
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
			t.Errorf("mode %v, want 0644", fi.Mode().Perm())
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left temporary files behind: %v", entries)
	}
	if err := WriteResolvConf(filepath.Join(dir, "missing", "resolv.conf"), host); err == nil {
		t.Errorf("WriteResolvConf into a missing directory succeeded")
	}
}

func TestUpstreamsFromResolvConf(t *testing.T) {
	tests := []struct {
		name, conf string
		want       []string
	}{
		{"none", "search corp.example\n", nil},
		{"in order, loopback stub kept", "nameserver 127.0.0.53\nnameserver 192.0.2.1\n", []string{"127.0.0.53:53", "192.0.2.1:53"}},
		{"ipv6 and zone", "nameserver 2001:db8::1\nnameserver fe80::1%eth0\n", []string{"[2001:db8::1]:53", "[fe80::1%eth0]:53"}},
		{"duplicates, junk and comments", "nameserver 192.0.2.1\nnameserver 192.0.2.1\nnameserver dns.example\nnameserver\n#nameserver 192.0.2.9\n", []string{"192.0.2.1:53"}},
		{"v4-mapped", "nameserver ::ffff:192.0.2.1\n", []string{"192.0.2.1:53"}},
	}
	for _, tt := range tests {
		got := UpstreamsFromResolvConf([]byte(tt.conf))
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
		// Every result is accepted by New.
		if len(got) > 0 {
			s, err := New(Config{Upstreams: got})
			if err != nil {
				t.Errorf("%s: New rejects %q: %v", tt.name, got, err)
			} else {
				s.Close()
			}
		}
	}
}
