package ca

import "testing"

func TestJoinToken(t *testing.T) {
	a, b := NewJoinToken(), NewJoinToken()
	if a == b {
		t.Fatalf("two tokens are equal: %s", a)
	}
	for _, tok := range []string{a, b} {
		if err := CheckTokenFormat(tok); err != nil {
			t.Fatalf("fresh token %q: %v", tok, err)
		}
	}
	if !TokenMatches(a, a) || TokenMatches(a, b) || TokenMatches("", "") {
		t.Fatal("TokenMatches compares wrongly")
	}
	for _, bad := range []string{"", "SHOAL-1-short", "SWMTKN-1-" + a[8:]} {
		if CheckTokenFormat(bad) == nil {
			t.Fatalf("malformed token %q accepted", bad)
		}
	}
}
