package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// specWithConfig parses `service create` flags for image with
// SHOAL_CONFIG set to config ("" leaves it unset).
func specWithConfig(t *testing.T, config, image string, args ...string) (*api.ServiceSpec, error) {
	t.Helper()
	o := newServiceOptions()
	o.lookupEnv = func(k string) (string, bool) {
		if k == configEnv && config != "" {
			return config, true
		}
		return "", false
	}
	fs := pflag.NewFlagSet("create", pflag.ContinueOnError)
	addServiceFlags(fs, o)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return buildServiceSpec(o, fs.Changed, image, nil)
}

// writeConfig writes a docker config file and returns its path.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWithRegistryAuth(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cfg := writeConfig(t, `{"auths": {
		"reg.example:5000": {"auth": "`+b64("alice:pa:ss")+`"},
		"https://index.docker.io/v1/": {"auth": "`+b64("hubuser:hubpass")+`"},
		"plain.example": {"username": "bob", "password": "pw"}
	}}`)

	cases := []struct {
		image string
		want  *api.RegistryAuth
	}{
		{"reg.example:5000/app:v1", &api.RegistryAuth{ServerAddress: "reg.example:5000", Username: "alice", Password: "pa:ss"}},
		{"busybox", &api.RegistryAuth{ServerAddress: "docker.io", Username: "hubuser", Password: "hubpass"}},
		{"plain.example/x", &api.RegistryAuth{ServerAddress: "plain.example", Username: "bob", Password: "pw"}},
	}
	for _, c := range cases {
		spec, err := specWithConfig(t, cfg, c.image, "--with-registry-auth")
		if err != nil {
			t.Fatalf("%s: %v", c.image, err)
		}
		if got := spec.GetTask().GetContainer().GetRegistryAuth(); !proto.Equal(got, c.want) {
			t.Errorf("%s: registry_auth = %v, want %v", c.image, got, c.want)
		}
	}

	// Without the flag nothing is sent, even with a credential at hand.
	spec, err := specWithConfig(t, cfg, "reg.example:5000/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if a := spec.GetTask().GetContainer().GetRegistryAuth(); a != nil {
		t.Fatalf("registry_auth without the flag: %v", a)
	}

	// With the flag and no credential for the host: an error naming both.
	_, err = specWithConfig(t, cfg, "other.example:5000/app", "--with-registry-auth")
	if err == nil || !strings.Contains(err.Error(), "other.example:5000") || !strings.Contains(err.Error(), cfg) {
		t.Fatalf("missing credential: err = %v; want it to name the host and %s", err, cfg)
	}
	missing := filepath.Join(t.TempDir(), "none.json")
	_, err = specWithConfig(t, missing, "reg.example:5000/app", "--with-registry-auth")
	if err == nil || !strings.Contains(err.Error(), "reg.example:5000") || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing file: err = %v; want it to name the host and %s", err, missing)
	}
	bad := writeConfig(t, `{"auths": {"reg.example:5000": {"auth": "%%%"}}}`)
	if _, err := specWithConfig(t, bad, "reg.example:5000/app", "--with-registry-auth"); err == nil || !strings.Contains(err.Error(), "base64") {
		t.Fatalf("bad auth: err = %v", err)
	}

	// ~/.docker/config.json when SHOAL_CONFIG is unset.
	home := t.TempDir()
	t.Setenv("HOME", home)
	if err := os.MkdirAll(filepath.Join(home, ".docker"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".docker", "config.json"), []byte(`{"auths":{"reg.example:5000":{"auth":"`+b64("carol:x")+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	spec, err = specWithConfig(t, "", "reg.example:5000/app", "--with-registry-auth")
	if err != nil {
		t.Fatal(err)
	}
	if u := spec.GetTask().GetContainer().GetRegistryAuth().GetUsername(); u != "carol" {
		t.Fatalf("home config: username %q, want carol", u)
	}
}
