// Package images builds small OCI images for end-to-end tests and serves
// them from a local registry, with no Docker, no crane and no network.
//
// # Programs
//
// The images hold static Go programs written for tests, one `package main`
// per folder under programs/ (embedded into this package and compiled with
// CGO_ENABLED=0 GOOS=linux in a private module, so the test binary need
// not run from the source tree). Each lands in the image at /bin/NAME
// with mode 0755:
//
//   - echo: HTTP server on $PORT (default 80). Every path answers JSON
//     {"hostname","task_id","version","client"}: task_id is
//     $SHOAL_TASK_ID, version is $VERSION or else the value baked in at
//     build time ([BuildOptions.Version], default "dev"), client is the
//     remote address as the server sees it. A `delay` query parameter
//     (a Go duration) holds the answer that long, after printing
//     "echo: delaying PATH for D" on stdout. /healthz answers 200,
//     or 503 while the file $UNHEALTHY_FILE (default /tmp/unhealthy)
//     exists. SIGTERM or SIGINT stops accepting, lets in-flight requests
//     finish (up to $SHUTDOWN_TIMEOUT, default 10s) and exits 0.
//     With $UDP_PORT set it also answers every UDP datagram on that port
//     with the same JSON (client: the sender as the server sees it).
//     `echo probe` GETs http://127.0.0.1:$PORT/healthz and exits 0 on 200,
//     1 otherwise: use it as a health check, as the image has no shell.
//   - client: makes -n (or $COUNT, default 10) GET requests to -url (or
//     $URL), -c (or $CONCURRENCY, default 1) at a time, each with -timeout
//     (or $TIMEOUT, default 2s), -interval (or $INTERVAL) apart per
//     worker, and prints one JSON line
//     {"sent","ok","failed","hostnames":{NAME:COUNT},"errors":[...]}
//     where hostnames counts the "hostname" field of echo answers. It
//     always exits 0. With -every (or $EVERY) D it repeats the batch
//     every D, forever, printing one line per batch.
//   - exit: sleeps $SLEEP (a Go duration or whole seconds, default 0) then
//     exits with code $CODE (default 0). SIGTERM ends it early with code
//     143.
//   - sleeper: runs until SIGTERM or SIGINT, then exits 0.
//   - hog: allocates $MB megabytes (default 64) and writes to every page,
//     prints "hog: holding N MB", then runs until SIGTERM or SIGINT
//     (exit 0). Under a smaller memory limit it is OOM-killed.
//
// # Images
//
// [Build] writes an OCI image layout as a tar file (index.json carrying
// the `io.containerd.image.name` annotation, oci-layout, blobs/sha256/…)
// that containerd's client.Import accepts. Image contents and digests are
// reproducible: same options and same Go toolchain give the same digests.
// Compiled programs and layers are cached in [DefaultCacheDir].
//
// # Registry
//
// [StartRegistry] runs the distribution registry binary (v3.1.2, built
// into $SHOAL_TOOLS_DIR/bin on first use) on a loopback or given address,
// optionally behind htpasswd basic auth, and [Registry.Push] uploads an
// [Image] with the plain registry HTTP API.
package images
