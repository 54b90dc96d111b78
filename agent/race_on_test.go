//go:build race

package agent

// raceEnabled is set when the race detector is on; it allows 8128
// goroutines at most, fewer than the scale test runs.
const raceEnabled = true
