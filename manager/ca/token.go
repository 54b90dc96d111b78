// Package ca owns the cluster's identities: join tokens now, the root CA
// and node certificates once the transport is mutual TLS.
//
// A join token is "SHOAL-1-" followed by 40 random base32 characters. The
// cluster keeps one token per role; a node is admitted with the role whose
// token it presents. Rotating a token invalidates the old one for new
// joins; nodes already in the cluster are unaffected.
package ca

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"strings"
)

// tokenPrefix starts every join token, with the format version.
const tokenPrefix = "SHOAL-1-"

// ErrMalformedToken means a string is not a join token at all.
var ErrMalformedToken = errors.New("malformed join token: expected SHOAL-1- followed by 40 characters; copy it again from `shoal cluster join-token`")

// NewJoinToken returns a fresh random join token.
func NewJoinToken() string {
	b := make([]byte, 25)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never fails on Linux
	}
	return tokenPrefix + strings.ToLower(base32.StdEncoding.EncodeToString(b))
}

// CheckTokenFormat returns ErrMalformedToken unless t looks like a token.
func CheckTokenFormat(t string) error {
	if !strings.HasPrefix(t, tokenPrefix) || len(t) != len(tokenPrefix)+40 {
		return ErrMalformedToken
	}
	return nil
}

// TokenMatches reports whether presented equals expected, in constant time.
func TokenMatches(presented, expected string) bool {
	if expected == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(presented), []byte(expected)) == 1
}
