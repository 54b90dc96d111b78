package main

// --with-registry-auth: send the registry credential of the service's
// image, read from a docker-style config file, with the spec.

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/distribution/reference"

	"github.com/shoalhq/shoal/proto/api"
)

// configEnv names the credential file; ~/.docker/config.json when unset.
const configEnv = "SHOAL_CONFIG"

// dockerHubNames are the names Docker Hub's credential may be stored
// under in a config file.
var dockerHubNames = []string{"docker.io", "index.docker.io", "registry-1.docker.io"}

// dockerConfig is the part of a docker config.json that holds
// credentials: auths maps a registry (host[:port], or a URL such as
// https://index.docker.io/v1/) to base64("user:password"), or to
// username and password fields.
type dockerConfig struct {
	Auths map[string]struct {
		Auth     string `json:"auth"`
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"auths"`
}

// applyRegistryAuth sets the container's registry_auth when
// --with-registry-auth is given: the credential for the registry host of
// the container's image, from the config file. Without the flag the spec
// is left alone. With it, a missing or unreadable file, or a file without
// a credential for that host, is an error naming the host and the file.
func applyRegistryAuth(spec *api.ServiceSpec, o *serviceOptions, changed func(string) bool) error {
	if !o.withRegistryAuth {
		return nil
	}
	image := spec.GetTask().GetContainer().GetImage()
	named, err := reference.ParseDockerRef(image)
	if err != nil {
		return fmt.Errorf("--with-registry-auth: invalid image reference %q: %v", image, err)
	}
	host := reference.Domain(named)
	path, err := registryConfigPath(o.lookupEnv)
	if err != nil {
		return fmt.Errorf("--with-registry-auth: %w", err)
	}
	user, pass, err := credentialFor(path, host)
	if err != nil {
		return fmt.Errorf("--with-registry-auth: %w", err)
	}
	spec.Task.Container.RegistryAuth = &api.RegistryAuth{ServerAddress: host, Username: user, Password: pass}
	return nil
}

// registryConfigPath is $SHOAL_CONFIG, else ~/.docker/config.json.
func registryConfigPath(lookupEnv func(string) (string, bool)) (string, error) {
	if p, ok := lookupEnv(configEnv); ok && p != "" {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no $%s and no home directory to find .docker/config.json in: %v", configEnv, err)
	}
	return filepath.Join(home, ".docker", "config.json"), nil
}

// credentialFor reads the username and password for registry host from
// the config file at path. A key matches when, without its scheme and
// path, it is host; Docker Hub's names all match one another.
func credentialFor(path, host string) (string, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", "", fmt.Errorf("no credential for registry %s: %s does not exist", host, path)
		}
		return "", "", fmt.Errorf("reading credentials for registry %s: %w", host, err)
	}
	var cfg dockerConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return "", "", fmt.Errorf("reading credentials for registry %s: %s is not a valid config file: %v", host, path, err)
	}
	for key, entry := range cfg.Auths {
		if !sameRegistry(configHost(key), host) {
			continue
		}
		if entry.Auth == "" {
			if entry.Username == "" {
				break
			}
			return entry.Username, entry.Password, nil
		}
		dec, err := base64.StdEncoding.DecodeString(entry.Auth)
		if err != nil {
			return "", "", fmt.Errorf("the credential for registry %s in %s is not valid base64: %v", host, path, err)
		}
		user, pass, ok := strings.Cut(string(dec), ":")
		if !ok || user == "" {
			return "", "", fmt.Errorf("the credential for registry %s in %s is not USER:PASSWORD", host, path)
		}
		return user, pass, nil
	}
	return "", "", fmt.Errorf("no credential for registry %s in %s (add auths.%q)", host, path, host)
}

// configHost turns a config file key into a host[:port].
func configHost(key string) string {
	key = strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	host, _, _ := strings.Cut(key, "/")
	return host
}

// sameRegistry reports whether two registry hosts are the same registry.
func sameRegistry(a, b string) bool {
	return a == b || (slices.Contains(dockerHubNames, a) && slices.Contains(dockerHubNames, b))
}
