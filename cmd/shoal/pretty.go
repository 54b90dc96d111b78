package main

// Human summaries ("inspect --pretty"): "Key: value" lines with aligned
// values and nested sections.

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// prettyWriter prints "Key: value" lines with the values aligned.
type prettyWriter struct {
	w io.Writer
}

// line prints one key and value; indent is the nesting level. An empty
// key continues the list above it.
func (p prettyWriter) line(indent int, key string, value any) {
	k := strings.Repeat(" ", indent) + key
	if key != "" {
		k += ":"
	}
	fmt.Fprintf(p.w, "%-24s%v\n", k, value)
}

// head prints a section heading.
func (p prettyWriter) head(indent int, key string) {
	fmt.Fprintf(p.w, "%s%s:\n", strings.Repeat(" ", indent), key)
}

// labels prints a sorted "KEY=VALUE" list under a heading, if any.
func (p prettyWriter) labels(indent int, key string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	p.head(indent, key)
	for _, kv := range sortedPairs(m) {
		fmt.Fprintf(p.w, "%s - %s\n", strings.Repeat(" ", indent), kv)
	}
}

// sortedPairs returns "KEY=VALUE" (or "KEY" for an empty value) sorted by key.
func sortedPairs(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k
		if m[k] != "" {
			out[i] += "=" + m[k]
		}
	}
	return out
}

// yesNo prints a boolean as docker's pretty output does.
func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}
