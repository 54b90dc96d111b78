package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// shoalBin is the binary under test, built once for the package.
var shoalBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shoal-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shoalBin = filepath.Join(dir, "shoal")
	build := exec.Command("go", "build", "-o", shoalBin, "../cmd/shoal")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // static: it is also containers' init
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build shoal:", err)
		os.Exit(1)
	}
	sweepAndTrap()
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
