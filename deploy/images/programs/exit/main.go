// Command exit sleeps $SLEEP (a Go duration or whole seconds) and then
// exits with code $CODE, for job and failure tests. SIGTERM or SIGINT
// ends the sleep early with code 143.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	code := 0
	if v := os.Getenv("CODE"); v != "" {
		c, err := strconv.Atoi(v)
		if err != nil {
			fmt.Fprintln(os.Stderr, "exit: bad CODE:", err)
			os.Exit(2)
		}
		code = c
	}
	var sleep time.Duration
	if v := os.Getenv("SLEEP"); v != "" {
		if secs, err := strconv.Atoi(v); err == nil {
			sleep = time.Duration(secs) * time.Second
		} else if d, err := time.ParseDuration(v); err == nil {
			sleep = d
		} else {
			fmt.Fprintln(os.Stderr, "exit: bad SLEEP:", v)
			os.Exit(2)
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	fmt.Printf("exit: sleeping %s then exiting %d\n", sleep, code)
	select {
	case <-time.After(sleep):
	case s := <-sig:
		fmt.Println("exit: got", s)
		os.Exit(143)
	}
	os.Exit(code)
}
