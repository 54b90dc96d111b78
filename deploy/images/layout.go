package images

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"
)

// walkLayout calls fn for every blobs/sha256/* entry of an OCI layout tar
// read from r, with the blob's digest, size and content. It checks the
// content against the digest when fn reads it to the end.
func walkLayout(r io.Reader, fn func(d digest.Digest, size int64, rd io.Reader) error) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		hexPart, ok := strings.CutPrefix(strings.TrimPrefix(hdr.Name, "./"), "blobs/sha256/")
		if !ok || hexPart == "" || hdr.Typeflag != tar.TypeReg {
			continue
		}
		d := digest.NewDigestFromEncoded(digest.SHA256, hexPart)
		if err := d.Validate(); err != nil {
			return fmt.Errorf("images: layout entry %s: %w", hdr.Name, err)
		}
		v := d.Verifier()
		if err := fn(d, hdr.Size, io.TeeReader(tr, v)); err != nil {
			return err
		}
		// Drain what fn did not read, then verify.
		if _, err := io.Copy(v, tr); err != nil {
			return err
		}
		if !v.Verified() {
			return fmt.Errorf("images: blob %s does not match its digest", d)
		}
	}
}
