// Command sleeper runs until SIGTERM or SIGINT, then exits 0.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	fmt.Println("sleeper: running")
	s := <-sig
	fmt.Println("sleeper: got", s, "- exiting")
}
