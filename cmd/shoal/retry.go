package main

// Versioned writes: every update carries the version of the object it
// read, and the store refuses a write whose version is no longer current
// (FailedPrecondition, "update out of sequence"). The command line then
// reads again, reapplies the user's change and tries again, a few times.

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
)

// maxUpdateAttempts bounds read-modify-write retries.
const maxUpdateAttempts = 5

// retryBackoff is the pause before the n-th retry (n from 1).
var retryBackoff = func(n int) time.Duration { return time.Duration(n) * 50 * time.Millisecond }

// retryOutOfSequence runs attempt, which must read the object afresh,
// change it and write it, until it succeeds, fails with anything other
// than FailedPrecondition, or has been tried maxUpdateAttempts times.
// The last error is returned unchanged, so the user reads the server's
// message.
func retryOutOfSequence(ctx context.Context, attempt func() error) error {
	var err error
	for n := 0; n < maxUpdateAttempts; n++ {
		if n > 0 {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(retryBackoff(n)):
			}
		}
		if err = attempt(); err == nil || !isCode(err, codes.FailedPrecondition) {
			return err
		}
	}
	return err
}
