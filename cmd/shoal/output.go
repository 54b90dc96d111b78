package main

// Output helpers shared by the commands: aligned tables, JSON, and the
// --format flag.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Output formats a --format flag may name.
const (
	formatTable  = "table"
	formatJSON   = "json"
	formatPretty = "pretty"
)

// protoJSON is how objects are printed: field names in lowerCamelCase,
// unset fields left out. Its whitespace is normalised by writeProtoArray,
// because protojson deliberately varies it between builds.
var protoJSON = protojson.MarshalOptions{UseProtoNames: false, EmitUnpopulated: false}

// table aligns tab-separated cells as docker does (padding 3) and drops
// the spaces an empty last cell would leave at the end of a line.
type table struct {
	out io.Writer
	buf bytes.Buffer
	tw  *tabwriter.Writer
}

// newTable returns a table that writes to w when flushed.
func newTable(w io.Writer) *table {
	t := &table{out: w}
	t.tw = tabwriter.NewWriter(&t.buf, 10, 1, 3, ' ', 0)
	return t
}

// Write adds tab-separated, newline-terminated rows.
func (t *table) Write(p []byte) (int, error) { return t.tw.Write(p) }

// Flush aligns the rows written so far and writes them out.
func (t *table) Flush() error {
	if err := t.tw.Flush(); err != nil {
		return err
	}
	lines := strings.SplitAfter(t.buf.String(), "\n")
	t.buf.Reset()
	for _, l := range lines {
		trimmed := strings.TrimRight(l, " \n")
		if strings.HasSuffix(l, "\n") {
			trimmed += "\n"
		}
		if _, err := io.WriteString(t.out, trimmed); err != nil {
			return err
		}
	}
	return nil
}

// checkFormat returns an error naming the flag unless value is one of valid.
func checkFormat(flag, value string, valid ...string) error {
	for _, v := range valid {
		if value == v {
			return nil
		}
	}
	return fmt.Errorf("invalid argument %q for --%s: valid values are %s", value, flag, strings.Join(valid, ", "))
}

// writeProtoArray prints msgs as one JSON array, two-space indented, like
// `docker inspect`. The output is stable for the same messages.
func writeProtoArray[M proto.Message](w io.Writer, msgs []M) error {
	raw := make([]json.RawMessage, 0, len(msgs))
	for _, m := range msgs {
		b, err := protoJSON.Marshal(m)
		if err != nil {
			return err
		}
		raw = append(raw, b)
	}
	b, err := json.MarshalIndent(raw, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// writeProtoObject prints one message as indented JSON.
func writeProtoObject(w io.Writer, m proto.Message) error {
	b, err := protoJSON.Marshal(m)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

// writeJSONLines prints each row as one line of compact JSON, like
// `docker ... ls --format json`.
func writeJSONLines[R any](w io.Writer, rows []R) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

// writeRows prints a listing: only each row's ID when quiet, one JSON
// object per line with format json, else the table that drawTable writes
// (header and rows, tab-separated), aligned.
func writeRows[R any](w io.Writer, rows []R, format string, quiet bool, id func(R) string, drawTable func(io.Writer)) error {
	switch {
	case quiet:
		for _, r := range rows {
			fmt.Fprintln(w, id(r))
		}
		return nil
	case format == formatJSON:
		return writeJSONLines(w, rows)
	}
	t := newTable(w)
	drawTable(t)
	return t.Flush()
}

// truncateID shortens an ID to the 12 characters docker shows in tables.
func truncateID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// formatTime prints Unix nanoseconds as an RFC 3339 time in UTC, or ""
// when unset.
func formatTime(ns int64) string {
	if ns == 0 {
		return ""
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339)
}

// formatBytes prints a byte count with a binary unit, as docker does
// (e.g. 1.5GiB).
func formatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	f := float64(n)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%dB", n)
	}
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", f), "0"), ".") + units[i]
}

// formatCPUs prints nano CPUs as a number of cores (e.g. 0.5).
func formatCPUs(nano int64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.9f", float64(nano)/1e9), "0"), ".")
}

// joinErrors reports each failure of a multi-argument command on its own
// line; nil when there were none.
func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return fmt.Errorf("%s", strings.Join(msgs, "\n"))
}
