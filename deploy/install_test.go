// Package deploy_test checks the files that install Shoal on a real host:
// deploy/install.sh, run into a temporary --root with fake binaries (it
// never touches the real / and needs no systemd), and the systemd units
// in deploy/systemd, parsed as INI files.
package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakes is a temporary SHOAL_TOOLS_DIR holding fake containerd and shim
// executables, and a fake shoal binary beside it.
type fakes struct {
	toolsDir string
	shoal    string
}

func newFakes(t *testing.T) fakes {
	t.Helper()
	dir := t.TempDir()
	f := fakes{toolsDir: filepath.Join(dir, "tools"), shoal: filepath.Join(dir, "shoal")}
	writeFile(t, filepath.Join(f.toolsDir, "bin", "containerd"), "#!/bin/sh\necho fake containerd\n", 0o755)
	writeFile(t, filepath.Join(f.toolsDir, "bin", "containerd-shim-runc-v2"), "#!/bin/sh\necho fake shim\n", 0o755)
	writeFile(t, f.shoal, "#!/bin/sh\necho fake shoal\n", 0o755)
	return f
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is filtered by the umask
		t.Fatal(err)
	}
}

// install runs install.sh --root root --no-start with args, and returns
// its combined output and whether it succeeded.
func install(t *testing.T, f fakes, root string, args ...string) (string, bool) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash is needed to run install.sh: %v", err)
	}
	cmd := exec.Command(bash, append([]string{"install.sh", "--root", root, "--no-start"}, args...)...)
	cmd.Env = append(os.Environ(), "SHOAL_TOOLS_DIR="+f.toolsDir)
	out, err := cmd.CombinedOutput()
	if exitErr := (*exec.ExitError)(nil); err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run install.sh: %v", err)
	}
	return string(out), err == nil
}

// mustInstall is install that fails the test when the script fails.
func mustInstall(t *testing.T, f fakes, root string, args ...string) string {
	t.Helper()
	out, ok := install(t, f, root, args...)
	if !ok {
		t.Fatalf("install.sh %v failed:\n%s", args, out)
	}
	return out
}

// tree maps every path under root to its mode and content, to compare two
// states of an installation.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		m[rel] = info.Mode().String()
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			m[rel] += " " + string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func checkFile(t *testing.T, path string, mode os.FileMode, want []byte) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Errorf("not installed: %v", err)
		return
	}
	if got := info.Mode(); got != mode {
		t.Errorf("%s: mode %v, want %v", path, got, mode)
	}
	if want != nil {
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from its source:\n%s", path, got)
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInstallIntoRoot(t *testing.T) {
	f := newFakes(t)
	root := t.TempDir()
	mustInstall(t, f, root, "--bin", f.shoal)

	checkFile(t, filepath.Join(root, "usr/local/bin/shoal"), 0o755, readFile(t, f.shoal))
	for _, b := range []string{"containerd", "containerd-shim-runc-v2"} {
		checkFile(t, filepath.Join(root, "usr/local/bin", b), 0o755, readFile(t, filepath.Join(f.toolsDir, "bin", b)))
	}
	for _, u := range []string{"shoal.service", "containerd.service"} {
		checkFile(t, filepath.Join(root, "etc/systemd/system", u), 0o644, readFile(t, filepath.Join("systemd", u)))
	}
	// 0600: the file may hold a join token.
	checkFile(t, filepath.Join(root, "etc/default/shoal"), 0o600, readFile(t, "systemd/shoal.default"))
	checkFile(t, filepath.Join(root, "etc/containerd/config.toml"), 0o644, nil)
	if cfg := readFile(t, filepath.Join(root, "etc/containerd/config.toml")); !bytes.Contains(cfg, []byte("version = ")) {
		t.Errorf("config.toml has no version line:\n%s", cfg)
	}

	// A rerun, with the operator's own /etc/default/shoal, changes nothing.
	edited := "SHOAL_OPTS=\"--listen-addr 10.0.0.2:4242\"\n"
	writeFile(t, filepath.Join(root, "etc/default/shoal"), edited, 0o600)
	before := tree(t, root)
	out := mustInstall(t, f, root, "--bin", f.shoal)
	after := tree(t, root)
	for p, v := range after {
		if before[p] != v {
			t.Errorf("rerun changed %s", p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			t.Errorf("rerun removed %s", p)
		}
	}
	if got := string(readFile(t, filepath.Join(root, "etc/default/shoal"))); got != edited {
		t.Errorf("rerun overwrote etc/default/shoal:\n%s", got)
	}
	if strings.Contains(out, "installed ") {
		t.Errorf("rerun installed something again:\n%s", out)
	}

	// A new binary replaces the old one; the rest stays.
	writeFile(t, f.shoal, "#!/bin/sh\necho fake shoal v2\n", 0o755)
	mustInstall(t, f, root, "--bin", f.shoal)
	checkFile(t, filepath.Join(root, "usr/local/bin/shoal"), 0o755, readFile(t, f.shoal))
	if got := string(readFile(t, filepath.Join(root, "etc/default/shoal"))); got != edited {
		t.Errorf("upgrade overwrote etc/default/shoal:\n%s", got)
	}
}

func TestInstallMissingBinary(t *testing.T) {
	f := newFakes(t)
	root := t.TempDir()
	out, ok := install(t, f, root, "--bin", filepath.Join(t.TempDir(), "shoal"))
	if ok {
		t.Fatalf("install.sh succeeded without a binary:\n%s", out)
	}
	if !strings.Contains(out, "make build") {
		t.Errorf("the error does not say to run `make build`:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(root, "usr")); err == nil {
		t.Errorf("install.sh wrote files before failing")
	}
}

func TestInstallMissingContainerd(t *testing.T) {
	f := newFakes(t)
	if err := os.RemoveAll(filepath.Join(f.toolsDir, "bin")); err != nil {
		t.Fatal(err)
	}
	out, ok := install(t, f, t.TempDir(), "--bin", f.shoal)
	if ok {
		t.Fatalf("install.sh succeeded with no containerd anywhere:\n%s", out)
	}
	if !strings.Contains(out, "deploy/tools.sh runtime") {
		t.Errorf("the error does not say to run `deploy/tools.sh runtime`:\n%s", out)
	}
}

// A distribution's containerd keeps its own unit and configuration.
func TestInstallKeepsDistributionContainerd(t *testing.T) {
	f := newFakes(t)
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "usr/bin/containerd"), "#!/bin/sh\n", 0o755)
	mustInstall(t, f, root, "--bin", f.shoal)
	for _, p := range []string{
		"usr/local/bin/containerd",
		"usr/local/bin/containerd-shim-runc-v2",
		"etc/systemd/system/containerd.service",
		"etc/containerd/config.toml",
	} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s installed beside the distribution's containerd", p)
		}
	}
	checkFile(t, filepath.Join(root, "etc/systemd/system/shoal.service"), 0o644, nil)
}

// A unit of the same name not written by install.sh is the operator's.
func TestInstallKeepsForeignUnit(t *testing.T) {
	f := newFakes(t)
	root := t.TempDir()
	mine := "[Service]\nExecStart=/opt/containerd/bin/containerd\n"
	writeFile(t, filepath.Join(root, "etc/systemd/system/containerd.service"), mine, 0o644)
	mustInstall(t, f, root, "--bin", f.shoal)
	if got := string(readFile(t, filepath.Join(root, "etc/systemd/system/containerd.service"))); got != mine {
		t.Errorf("install.sh replaced the operator's containerd.service:\n%s", got)
	}
}

// unit is a parsed systemd unit file: section, then key, then every value
// the key was given, in order.
type unit map[string]map[string][]string

// parseUnit reads a unit file in systemd's INI syntax: [Section] headers,
// Key=Value lines, comments starting with # or ;, and lines continued
// with a trailing backslash.
func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, path)))
	n, pending := 0, ""
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			pending += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			t.Fatalf("%s:%d: not a Key=Value line in a section: %q", path, n, line)
		}
		key = strings.TrimSpace(key)
		u[section][key] = append(u[section][key], strings.TrimSpace(value))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// want checks that section.key has exactly the values given.
func (u unit) want(t *testing.T, name, section, key string, values ...string) {
	t.Helper()
	got := u[section][key]
	if strings.Join(got, "\n") != strings.Join(values, "\n") {
		t.Errorf("%s: [%s] %s = %q, want %q", name, section, key, got, values)
	}
}

func TestUnits(t *testing.T) {
	s := parseUnit(t, "systemd/shoal.service")
	s.want(t, "shoal.service", "Service", "ExecStart", "/usr/local/bin/shoal daemon $SHOAL_OPTS")
	s.want(t, "shoal.service", "Service", "EnvironmentFile", "-/etc/default/shoal")
	s.want(t, "shoal.service", "Service", "KillMode", "process")
	s.want(t, "shoal.service", "Service", "Delegate", "yes")
	s.want(t, "shoal.service", "Service", "Restart", "on-failure")
	s.want(t, "shoal.service", "Install", "WantedBy", "multi-user.target")
	for _, key := range []string{"After", "Wants"} {
		deps := strings.Fields(strings.Join(s["Unit"][key], " "))
		for _, dep := range []string{"containerd.service", "network-online.target"} {
			if !slices.Contains(deps, dep) {
				t.Errorf("shoal.service: [Unit] %s lacks %s: %q", key, dep, deps)
			}
		}
	}
	// The unit must not sandbox mounts: task network namespaces are bind
	// mounts that containerd must see.
	for _, key := range []string{"PrivateTmp", "ProtectSystem", "PrivateMounts", "MountFlags"} {
		if v, ok := s["Service"][key]; ok {
			t.Errorf("shoal.service sets %s=%q", key, v)
		}
	}

	c := parseUnit(t, "systemd/containerd.service")
	c.want(t, "containerd.service", "Service", "ExecStart", "/usr/local/bin/containerd")
	c.want(t, "containerd.service", "Service", "ExecStartPre", "-/sbin/modprobe overlay")
	c.want(t, "containerd.service", "Service", "KillMode", "process")
	c.want(t, "containerd.service", "Service", "Delegate", "yes")
	c.want(t, "containerd.service", "Service", "OOMScoreAdjust", "-999")
	c.want(t, "containerd.service", "Install", "WantedBy", "multi-user.target")

	// The default file sets nothing but SHOAL_OPTS, empty.
	for line := range strings.Lines(string(readFile(t, "systemd/shoal.default"))) {
		if line = strings.TrimSuffix(line, "\n"); line != "" && !strings.HasPrefix(line, "#") && line != `SHOAL_OPTS=""` {
			t.Errorf("shoal.default: unexpected setting %q", line)
		}
	}
}
