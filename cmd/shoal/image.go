package main

// `shoal image load`: import an image archive into this node's runtime.

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/shoalhq/shoal/proto/api"
)

// loadChunkSize is the size of the chunks an archive is streamed in (well
// below gRPC's 4 MiB message limit).
const loadChunkSize = 1 << 20

// newImageCmd returns `shoal image` and its subcommands.
func newImageCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage the images of this node",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newImageLoadCmd(g))
	return cmd
}

// newImageLoadCmd returns `shoal image load`. Like `cluster leave`, it
// talks to the local daemon through its unix socket: the images land on
// the node the command runs on, which must use the containerd runtime.
func newImageLoadCmd(g *globalOptions) *cobra.Command {
	var input string
	cmd := &cobra.Command{
		Use:   "load [-i FILE | FILE]",
		Short: "Load an image archive into this node's containerd",
		Long: `Load an image archive (an OCI image layout tar, or the output of
docker save) from FILE or standard input into this node's containerd, for
nodes that cannot reach a registry. Tasks on this node then run the loaded
images without pulling. Prints "Loaded image: REF" per image.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if input != "" {
					return fmt.Errorf("give the archive either as FILE or with -i, not both")
				}
				input = args[0]
			}
			var r io.Reader = cmd.InOrStdin()
			if input != "" && input != "-" {
				f, err := os.Open(input)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := commandContext(cmd)
			stream, err := api.NewLocalNodeClient(c.conn).LoadImage(ctx)
			if err != nil {
				return c.convert(ctx, err)
			}
			if err := sendArchive(stream, r); err != nil {
				return err
			}
			resp, err := stream.CloseAndRecv()
			if err != nil {
				return c.convert(ctx, err)
			}
			for _, name := range resp.GetImages() {
				fmt.Fprintf(cmd.OutOrStdout(), "Loaded image: %s\n", name)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "read the archive from `FILE` instead of standard input")
	return cmd
}

// sendArchive streams r in chunks. A send the server ended (io.EOF)
// returns nil: CloseAndRecv then reports the server's error.
func sendArchive(stream api.LocalNode_LoadImageClient, r io.Reader) error {
	buf := make([]byte, loadChunkSize)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if serr := stream.Send(&api.LoadImageChunk{Data: buf[:n]}); serr != nil {
				if errors.Is(serr, io.EOF) {
					return nil
				}
				return serr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the archive: %w", err)
		}
	}
}
