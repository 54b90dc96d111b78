// Command echo is a test HTTP server: every request gets a JSON answer
// naming the host, task, version and client address; /healthz reports
// health from a marker file; SIGTERM drains in-flight requests. See the
// images package documentation for the full contract.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// answer is the JSON body of every non-health request.
type answer struct {
	Hostname string `json:"hostname"`
	TaskID   string `json:"task_id"`
	Version  string `json:"version"`
	Client   string `json:"client"`
}

func main() {
	port := getenv("PORT", "80")
	if len(os.Args) > 1 && (os.Args[1] == "probe" || os.Args[1] == "-probe") {
		os.Exit(probe(port))
	}
	if err := serve(port); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}

func getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// probe checks the local server's /healthz and returns an exit code.
func probe(port string) int {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort("127.0.0.1", port) + "/healthz")
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "probe: status", resp.Status)
		return 1
	}
	return 0
}

func serve(port string) error {
	hostname, _ := os.Hostname()
	ver := getenv("VERSION", version)
	taskID := os.Getenv("SHOAL_TASK_ID")
	unhealthy := getenv("UNHEALTHY_FILE", "/tmp/unhealthy")
	grace, err := time.ParseDuration(getenv("SHUTDOWN_TIMEOUT", "10s"))
	if err != nil {
		return fmt.Errorf("SHUTDOWN_TIMEOUT: %w", err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Stat(unhealthy); err == nil {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if d := r.URL.Query().Get("delay"); d != "" {
			dur, err := time.ParseDuration(d)
			if err != nil {
				http.Error(w, "bad delay: "+err.Error(), http.StatusBadRequest)
				return
			}
			// Tests wait for this line to know a request is in flight.
			fmt.Printf("echo: delaying %s for %s\n", r.URL.Path, dur)
			select {
			case <-time.After(dur):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(answer{
			Hostname: hostname,
			TaskID:   taskID,
			Version:  ver,
			Client:   r.RemoteAddr,
		})
	})

	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return err
	}
	if udpPort := os.Getenv("UDP_PORT"); udpPort != "" {
		pc, err := net.ListenPacket("udp", ":"+udpPort)
		if err != nil {
			return err
		}
		defer pc.Close()
		fmt.Printf("echo: udp on %s\n", pc.LocalAddr())
		go serveUDP(pc, answer{Hostname: hostname, TaskID: taskID, Version: ver})
	}
	fmt.Printf("echo: listening on %s version %s\n", ln.Addr(), ver)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	fmt.Println("echo: signal received, draining")
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Println("echo: stopped")
	return nil
}

// serveUDP answers every datagram with the echo answer, naming the
// sender as the server sees it.
func serveUDP(pc net.PacketConn, a answer) {
	buf := make([]byte, 2048)
	for {
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		a.Client = from.String()
		b, _ := json.Marshal(a)
		pc.WriteTo(b, from)
	}
}
