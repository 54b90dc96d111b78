// Package e2e holds end-to-end tests that drive the real `shoal` binary:
// several daemons on this machine, reached through their API like an
// operator would. Tests build the binary once (TestMain) and keep each
// daemon's log in the test's temporary directory, printed on failure.
package e2e
