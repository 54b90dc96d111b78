#!/usr/bin/env bash
# Installs the tools Shoal's build and tests need, idempotently, into a
# fixed cache folder so that a rerun is fast:
#   - proto: protoc from Debian (pinned version checked), protoc-gen-go and
#     protoc-gen-go-grpc from the Go module proxy (pinned versions).
#   - runtime: runc from Debian (if missing), and containerd,
#     containerd-shim-runc-v2 and the distribution registry built with
#     CGO_ENABLED=0 from the Go module proxy (pinned versions). Debian's
#     containerd package is never installed: its 1.6 shim in /usr/bin would
#     be picked by the 2.x daemon; callers put $TOOLS_DIR/bin first in PATH.
# Usage: deploy/tools.sh [proto] [runtime]   (default: proto)
set -euo pipefail

TOOLS_DIR=${SHOAL_TOOLS_DIR:-/var/cache/shoal}
BIN="$TOOLS_DIR/bin"
PROTOC_VERSION="3.21.12"
PROTOC_GEN_GO_VERSION="v1.36.12"
PROTOC_GEN_GO_GRPC_VERSION="v1.5.1"
CONTAINERD_VERSION="v2.4.2"
REGISTRY_VERSION="v3.1.2"

mkdir -p "$BIN"
export GOBIN="$BIN"

# One run at a time per tools folder (parallel CI jobs, several work
# trees): a second run waits, then finds the stamps and returns at once.
exec 9>"$TOOLS_DIR/.lock"
flock 9

apt_install() {
	if [ "$(id -u)" != 0 ]; then
		echo "tools.sh: need root to install Debian packages: $*" >&2
		exit 1
	fi
	if [ ! -f "$TOOLS_DIR/.apt-updated" ]; then
		apt-get update -qq
		touch "$TOOLS_DIR/.apt-updated"
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# go_install builds package@version into $BIN from / (outside any module,
# so Shoal's go.mod is untouched); a stamp beside the binary makes reruns
# instant. Extra arguments are environment settings for the build.
go_install() { # package@version binary [VAR=value...]
	local stamp="$BIN/.$2.version"
	if [ -x "$BIN/$2" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$1" ]; then
		return
	fi
	(cd / && env "${@:3}" go install "$1")
	echo "$1" >"$stamp"
}

install_proto() {
	if ! command -v protoc >/dev/null || ! protoc --version | grep -q "$PROTOC_VERSION"; then
		apt_install protobuf-compiler
	fi
	if ! protoc --version | grep -q "$PROTOC_VERSION"; then
		echo "tools.sh: protoc $PROTOC_VERSION expected, found $(protoc --version)" >&2
		exit 1
	fi
	go_install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION" protoc-gen-go
	go_install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION" protoc-gen-go-grpc
}

install_runtime() {
	# ip and nsenter build and enter the namespace hosts of the playground
	# and the end-to-end tests.
	command -v ip >/dev/null || apt_install iproute2
	command -v nsenter >/dev/null || apt_install util-linux
	if ! command -v runc >/dev/null && [ ! -x /usr/sbin/runc ]; then
		apt_install runc
	fi
	local ctrd="github.com/containerd/containerd/v2/cmd"
	go_install "$ctrd/containerd@$CONTAINERD_VERSION" containerd CGO_ENABLED=0
	go_install "$ctrd/containerd-shim-runc-v2@$CONTAINERD_VERSION" containerd-shim-runc-v2 CGO_ENABLED=0
	go_install "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION" registry CGO_ENABLED=0
}

for what in "${@:-proto}"; do
	case "$what" in
	proto) install_proto ;;
	runtime) install_runtime ;;
	*) echo "tools.sh: unknown tool set $what" >&2; exit 2 ;;
	esac
done
