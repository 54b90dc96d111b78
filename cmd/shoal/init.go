package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/shoalhq/shoal/cmd/shoal/internal/initproc"
)

// newInitCmd returns the hidden `shoal init -- CMD [ARG...]`, the PID 1
// the containerd runtime puts in front of a task's command when its
// service asks for --init.
func newInitCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "init -- COMMAND [ARG...]",
		Short:              "Run COMMAND as a container's child, forwarding signals and reaping zombies",
		Hidden:             true,
		DisableFlagParsing: true,
		Run: func(_ *cobra.Command, args []string) {
			os.Exit(initproc.Run(args))
		},
	}
}
