package orchestrator

import (
	"flag"
	"os"
	"testing"
)

// defaultChecks is how many cases each property test draws unless
// -rapid.checks or RAPID_CHECKS says otherwise: rapid's 100 finds the
// rarer counterexamples (a job restart past max_concurrent) too seldom.
const defaultChecks = "2000"

func TestMain(m *testing.M) {
	flag.Parse()
	explicit := os.Getenv("RAPID_CHECKS") != ""
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "rapid.checks" })
	if !explicit {
		if err := flag.Set("rapid.checks", defaultChecks); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
