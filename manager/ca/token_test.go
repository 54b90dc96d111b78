package ca

import (
	"strings"
	"testing"
	"time"
)

func TestJoinTokens(t *testing.T) {
	root, err := NewRootCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	n1, n2 := NewNonce(), NewNonce()
	w1, _ := root.JoinToken(RoleWorker, n1)
	w1again, _ := root.JoinToken(RoleWorker, n1)
	w2, _ := root.JoinToken(RoleWorker, n2)
	m1, _ := root.JoinToken(RoleManager, n1)
	if w1 != w1again {
		t.Fatal("the same role and nonce give two tokens")
	}
	if w1.Secret == w2.Secret || w1.Secret == m1.Secret {
		t.Fatal("a new nonce or another role gives the same secret")
	}
	if w1.Digest != root.Digest() || len(w1.String()) != TokenLen {
		t.Fatalf("token %q: digest or length wrong", w1)
	}
	parsed, err := ParseToken(w1.String())
	if err != nil || parsed != w1 {
		t.Fatalf("parse %q: %v %v", w1, parsed, err)
	}
	if !SecretMatches(w1.Secret, HashSecret(w1.Secret)) || SecretMatches(w2.Secret, HashSecret(w1.Secret)) || SecretMatches(w1.Secret, nil) {
		t.Fatal("SecretMatches compares wrongly")
	}
	for _, bad := range []string{"", "SHOAL-1-short", "SWMTKN-1-" + w1.String()[8:], strings.ToUpper(w1.String()), w1.String()[:TokenLen-1] + "!"} {
		if _, err := ParseToken(bad); err == nil {
			t.Fatalf("malformed token %q accepted", bad)
		}
	}
	verifyOnly, _ := ParseRootCA(root.CertPEM, nil)
	if _, err := verifyOnly.JoinToken(RoleWorker, n1); err != ErrNoSigner {
		t.Fatalf("token without the key: %v", err)
	}
}
