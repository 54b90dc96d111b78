// Command client makes N HTTP GET requests to a URL and prints a JSON
// summary (sent, ok, failed, per-hostname counts of echo answers). It
// always exits 0. See the images package documentation.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"
)

// summary is printed as one JSON line on stdout.
type summary struct {
	Sent      int            `json:"sent"`
	OK        int            `json:"ok"`
	Failed    int            `json:"failed"`
	Hostnames map[string]int `json:"hostnames"`
	Errors    []string       `json:"errors,omitempty"`
}

func envDefault(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

func envDur(key string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

func main() {
	url := flag.String("url", envDefault("URL", ""), "URL to GET (env URL)")
	n := flag.Int("n", envInt("COUNT", 10), "number of requests (env COUNT)")
	conc := flag.Int("c", envInt("CONCURRENCY", 1), "requests in flight (env CONCURRENCY)")
	timeout := flag.Duration("timeout", envDur("TIMEOUT", 2*time.Second), "per-request timeout (env TIMEOUT)")
	interval := flag.Duration("interval", envDur("INTERVAL", 0), "pause between requests of one worker (env INTERVAL)")
	every := flag.Duration("every", envDur("EVERY", 0), "repeat the batch this often, forever, one line each (env EVERY; 0: once)")
	flag.Parse()
	if *url == "" && flag.NArg() > 0 {
		*url = flag.Arg(0)
	}
	if *conc < 1 {
		*conc = 1
	}

	if *url == "" {
		emit(summary{Hostnames: map[string]int{}, Errors: []string{"no URL given (-url or $URL)"}})
		return
	}
	c := &http.Client{Timeout: *timeout}
	// Fresh connections per request so that load balancing is visible.
	c.Transport = &http.Transport{DisableKeepAlives: true}
	for {
		emit(batch(c, *url, *n, *conc, *interval))
		if *every <= 0 {
			return
		}
		time.Sleep(*every)
	}
}

// batch makes n requests to url, conc at a time, and sums them up.
func batch(c *http.Client, url string, n, conc int, interval time.Duration) summary {
	s := summary{Hostnames: map[string]int{}}
	var mu sync.Mutex
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			for range jobs {
				if !first && interval > 0 {
					time.Sleep(interval)
				}
				first = false
				host, err := get(c, url)
				mu.Lock()
				s.Sent++
				if err != nil {
					s.Failed++
					if len(s.Errors) < 10 {
						s.Errors = append(s.Errors, err.Error())
					}
				} else {
					s.OK++
					s.Hostnames[host]++
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	sort.Strings(s.Errors)
	return s
}

// get fetches url and returns the "hostname" field of the JSON answer
// ("" if the body is not an echo answer).
func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	var a struct {
		Hostname string `json:"hostname"`
	}
	_ = json.Unmarshal(body, &a)
	return a.Hostname, nil
}

func emit(s summary) {
	b, _ := json.Marshal(s)
	fmt.Println(string(b))
}
