package main

// Parsers for the values of service flags. Each takes the flag's name and
// the value as typed, and on a bad value returns an error of the form
//
//	invalid argument "VALUE" for --FLAG: what is valid
//
// so that a mistake is caught, and explained, before anything is sent.

import (
	"encoding/csv"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// flagError is the error for a bad flag value.
func flagError(flag, value, format string, args ...any) error {
	return fmt.Errorf("invalid argument %q for --%s: %s", value, flag, fmt.Sprintf(format, args...))
}

// parseDuration reads a Go/docker duration (10s, 1m30s) as nanoseconds.
func parseDuration(flag, s string) (int64, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, flagError(flag, s, "not a duration (examples: 10s, 1m30s)")
	}
	if d < 0 {
		return 0, flagError(flag, s, "must not be negative")
	}
	return int64(d), nil
}

// parseUint reads a whole number of at most bits bits.
func parseUint(flag, s string, bits int) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		if bits < 64 {
			return 0, flagError(flag, s, "not a whole number from 0 to %d", uint64(1)<<bits-1)
		}
		return 0, flagError(flag, s, "not a whole number (examples: 0, 3)")
	}
	return n, nil
}

// parseRatio reads a number from 0 to 1.
func parseRatio(flag, s string) (float32, error) {
	f, err := strconv.ParseFloat(s, 32)
	if err != nil || f < 0 || f > 1 || math.IsNaN(f) {
		return 0, flagError(flag, s, "not a number from 0 to 1 (example: 0.2)")
	}
	return float32(f), nil
}

// parseNanoCPUs reads a number of CPUs (0.5, 2) as billionths of a core,
// exactly: 0.1 is 100000000.
func parseNanoCPUs(flag, s string) (int64, error) {
	r, ok := new(big.Rat).SetString(s)
	if !ok || r.Sign() < 0 || strings.ContainsAny(s, "/eE") {
		return 0, flagError(flag, s, "not a number of CPUs (examples: 0.5, 2)")
	}
	nano := r.Mul(r, big.NewRat(1e9, 1))
	if !nano.IsInt() || !nano.Num().IsInt64() {
		return 0, flagError(flag, s, "too precise or too large (at most 9 decimals)")
	}
	return nano.Num().Int64(), nil
}

// memoryPattern is docker's memory size: a number, an optional unit
// b/k/m/g/t/p (any case) and an optional "b" or "ib".
var memoryPattern = regexp.MustCompile(`^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$`)

// parseMemory reads a memory size as docker does: binary units, so 64M is
// 64 MiB and 1g is 1 GiB; no unit means bytes.
func parseMemory(flag, s string) (int64, error) {
	m := memoryPattern.FindStringSubmatch(s)
	if m == nil {
		return 0, flagError(flag, s, "not a memory size (examples: 64M, 1.5g, 512k; units b, k, m, g, t)")
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, flagError(flag, s, "not a memory size (examples: 64M, 1.5g, 512k; units b, k, m, g, t)")
	}
	mult := 1.0
	if m[2] != "" {
		mult = math.Pow(1024, float64(strings.Index("kmgtp", strings.ToLower(m[2]))+1))
	}
	b := n * mult
	if b >= math.MaxInt64 {
		return 0, flagError(flag, s, "too large")
	}
	return int64(b), nil
}

// parseEnum reads one of the keys of valid; the error lists them in order.
func parseEnum[T any](flag, s string, names []string, values []T) (T, error) {
	for i, n := range names {
		if s == n {
			return values[i], nil
		}
	}
	var zero T
	return zero, flagError(flag, s, "valid values are %s", strings.Join(names, ", "))
}

// parseKeyValue reads KEY=VALUE; when optionalValue, KEY alone means an
// empty value.
func parseKeyValue(flag, s string, optionalValue bool) (string, string, error) {
	k, v, ok := strings.Cut(s, "=")
	if k == "" || strings.TrimSpace(k) != k || (!ok && !optionalValue) {
		if optionalValue {
			return "", "", flagError(flag, s, "expected KEY=VALUE or KEY")
		}
		return "", "", flagError(flag, s, "expected KEY=VALUE")
	}
	return k, v, nil
}

// field is one key=value (or bare key) of a long-form flag value.
type field struct {
	key, value string
	hasValue   bool
}

// parseFields splits a long-form value such as
// "type=bind,source=/a,target=/b,readonly" into its fields; values may
// be quoted as in CSV.
func parseFields(flag, s string) ([]field, error) {
	r := csv.NewReader(strings.NewReader(s))
	r.TrimLeadingSpace = true
	parts, err := r.Read()
	if err != nil {
		return nil, flagError(flag, s, "not a comma-separated list of KEY=VALUE")
	}
	fields := make([]field, 0, len(parts))
	for _, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if k == "" {
			return nil, flagError(flag, s, "empty key in %q", p)
		}
		fields = append(fields, field{key: k, value: v, hasValue: ok})
	}
	return fields, nil
}

// isLongForm reports whether a flag value uses the KEY=VALUE,... form.
func isLongForm(s string) bool {
	return strings.Contains(s, "=")
}

// parseBoolField reads a field that may be bare (true) or =true/false/1/0.
func parseBoolField(flag, s string, f field) (bool, error) {
	if !f.hasValue {
		return true, nil
	}
	b, err := strconv.ParseBool(f.value)
	if err != nil {
		return false, flagError(flag, s, "%s must be true or false", f.key)
	}
	return b, nil
}

// parseFileMode reads octal permission bits such as 0444.
func parseFileMode(flag, s, v string) (uint32, error) {
	m, err := strconv.ParseUint(v, 8, 32)
	if err != nil || m > 07777 {
		return 0, flagError(flag, s, "mode %q is not octal permission bits (example: 0444)", v)
	}
	return uint32(m), nil
}

// splitWords splits a command line into words as a shell would: spaces
// separate words, single quotes keep everything literally, and a
// backslash escapes the next character outside single quotes. Nothing is
// expanded.
func splitWords(flag, s string) ([]string, error) {
	var (
		words   []string
		cur     strings.Builder
		inWord  bool
		quote   rune
		escaped bool
	)
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '\\':
				escaped = true
			default:
				cur.WriteRune(r)
			}
		case r == '\\':
			escaped, inWord = true, true
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 || escaped {
		return nil, flagError(flag, s, "unterminated quote or trailing backslash")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
