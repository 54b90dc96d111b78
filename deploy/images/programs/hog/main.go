// Command hog allocates $MB megabytes (default 64), writes to every page
// so that the memory is really used, prints "hog: holding N MB", then
// runs until SIGTERM or SIGINT (exit 0). It is for memory limit tests:
// under a smaller limit the kernel kills it while it touches the pages.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

func main() {
	mb := 64
	if v := os.Getenv("MB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			fmt.Fprintln(os.Stderr, "hog: bad MB:", v)
			os.Exit(2)
		}
		mb = n
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	fmt.Printf("hog: allocating %d MB\n", mb)
	chunks := make([][]byte, 0, mb)
	for i := 0; i < mb; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = byte(i + 1)
		}
		chunks = append(chunks, b)
	}
	fmt.Printf("hog: holding %d MB\n", len(chunks))
	<-sig
	// Keep the memory reachable until the end.
	fmt.Println("hog: done", len(chunks[len(chunks)-1]) > 0 || mb == 0)
}
