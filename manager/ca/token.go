package ca

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// tokenPrefix starts every join token, with the format version.
const tokenPrefix = "SHOAL-1-"

// Lengths of a token's parts.
const (
	digestLen = 52 // base32 of a SHA-256, no padding
	secretLen = 40 // base32 of 25 bytes
	// TokenLen is the length of a join token.
	TokenLen = len(tokenPrefix) + digestLen + 1 + secretLen
)

// ErrMalformedToken means a string is not a join token at all.
var ErrMalformedToken = errors.New("malformed join token: expected SHOAL-1-<CA digest>-<secret>; copy it again from `shoal cluster join-token worker|manager` on a manager")

// Token is a parsed join token.
type Token struct {
	// Digest is the root CA's digest (see DigestOf).
	Digest string
	// Secret admits a node; only its hash is stored.
	Secret string
}

// String is the token as users copy it.
func (t Token) String() string { return tokenPrefix + t.Digest + "-" + t.Secret }

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// ParseToken reads a join token; errs with ErrMalformedToken.
func ParseToken(s string) (Token, error) {
	rest, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok || len(s) != TokenLen || rest[digestLen] != '-' {
		return Token{}, ErrMalformedToken
	}
	t := Token{Digest: rest[:digestLen], Secret: rest[digestLen+1:]}
	for _, part := range []string{t.Digest, t.Secret} {
		if _, err := b32.DecodeString(strings.ToUpper(part)); err != nil || strings.ToLower(part) != part {
			return Token{}, ErrMalformedToken
		}
	}
	return t, nil
}

// NewNonce returns a fresh random nonce for a token secret; rotating a
// token is replacing its nonce.
func NewNonce() []byte {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never fails on Linux
	}
	return b
}

// JoinToken returns the join token for role under nonce: the root's
// digest and a secret derived from the root key, the role and the nonce,
// so every manager computes the same token and none stores it. Errs with
// ErrNoSigner without the key.
func (r *RootCA) JoinToken(role Role, nonce []byte) (Token, error) {
	if r.signer == nil {
		return Token{}, ErrNoSigner
	}
	mac := hmac.New(sha256.New, r.keyPEM)
	fmt.Fprintf(mac, "shoal join token\x00%s\x00", role)
	mac.Write(nonce)
	sum := mac.Sum(nil)
	return Token{Digest: r.Digest(), Secret: strings.ToLower(b32.EncodeToString(sum[:25]))}, nil
}

// HashSecret is what the cluster stores of a token secret.
func HashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte("shoal join secret\x00" + secret))
	return sum[:]
}

// SecretMatches reports, in constant time, whether secret hashes to hash.
// An empty hash matches nothing.
func SecretMatches(secret string, hash []byte) bool {
	if len(hash) == 0 {
		return false
	}
	return subtle.ConstantTimeCompare(HashSecret(secret), hash) == 1
}
