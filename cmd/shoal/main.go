// Command shoal is Shoal's one binary: `shoal daemon` runs a node, every
// other subcommand is a client of the manager API.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
