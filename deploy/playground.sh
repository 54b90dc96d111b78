#!/usr/bin/env bash
# A local cluster on this machine: three manager daemons on loopback ports,
# each with its own data directory, plus example services.
#   deploy/playground.sh up     start it (idempotent: a running one is kept)
#   deploy/playground.sh status show the nodes
#   deploy/playground.sh down   stop it and remove its state
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${SHOAL_PLAYGROUND_DIR:-/tmp/shoal-playground}
BIN=${SHOAL_BIN:-$PWD/bin/shoal}
BASE_PORT=${SHOAL_PLAYGROUND_PORT:-4242}
MANAGERS=3

addr() { echo "127.0.0.1:$((BASE_PORT + $1 - 1))"; }

running() { [ -f "$DIR/m$1/pid" ] && kill -0 "$(cat "$DIR/m$1/pid")" 2>/dev/null; }

wait_serving() {
	for _ in $(seq 1 300); do
		grep -q "is serving on" "$DIR/m$1/daemon.log" 2>/dev/null && return 0
		running "$1" || { echo "manager m$1 failed to start:"; tail -20 "$DIR/m$1/daemon.log"; exit 1; }
		sleep 0.1
	done
	echo "manager m$1 did not start in 30 s; see $DIR/m$1/daemon.log"; exit 1
}

start() { # N extra-args...
	local n=$1; shift
	mkdir -p "$DIR/m$n"
	if running "$n"; then return; fi
	local mode=()
	[ -f "$DIR/m$n/node.json" ] || mode=("$@")
	# Simulated tasks until the playground runs a containerd per host.
	setsid "$BIN" daemon --data-dir "$DIR/m$n" --listen-addr "$(addr "$n")" --hostname "m$n" --runtime simulated "${mode[@]}" \
		>>"$DIR/m$n/daemon.log" 2>&1 </dev/null &
	echo $! >"$DIR/m$n/pid"
	wait_serving "$n"
}

up() {
	[ -x "$BIN" ] || CGO_ENABLED=0 go build -o "$BIN" ./cmd/shoal
	start 1 --init
	local token
	token=$("$BIN" --host "$(addr 1)" cluster join-token manager -q)
	for n in $(seq 2 $MANAGERS); do start "$n" --join "$(addr 1)" --token "$token"; done
	for _ in $(seq 1 100); do
		[ "$("$BIN" --host "$(addr 1)" node ls -q | wc -l)" -ge $MANAGERS ] && break
		sleep 0.2
	done
	"$BIN" --host "$(addr 1)" service inspect web >/dev/null 2>&1 ||
		"$BIN" --host "$(addr 1)" service create -q --wait-timeout 60s --name web --replicas 6 -p 8080:80 registry.test:5000/web:v1 >/dev/null
	echo
	"$BIN" --host "$(addr 1)" node ls
	echo
	"$BIN" --host "$(addr 1)" service ls
	echo
	echo "Playground is up. Talk to it with:"
	echo "    export SHOAL_HOST=$(addr 1)"
	echo "Stop it with: make playground-down"
}

status() {
	for n in $(seq 1 $MANAGERS); do
		if running "$n"; then echo "m$n  $(addr "$n")  running (pid $(cat "$DIR/m$n/pid"))"; else echo "m$n  $(addr "$n")  stopped"; fi
	done
	running 1 && "$BIN" --host "$(addr 1)" node ls || true
}

down() {
	for n in $(seq 1 $MANAGERS); do
		if running "$n"; then
			pid=$(cat "$DIR/m$n/pid")
			kill "$pid"
			for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -9 "$pid" 2>/dev/null || true
		fi
	done
	rm -rf "$DIR"
	echo "Playground removed."
}

case "${1:-up}" in
up) up ;;
status) status ;;
down) down ;;
*) echo "usage: $0 up|status|down" >&2; exit 2 ;;
esac
