#!/usr/bin/env bash
# Installs the tools Shoal's build and tests need, idempotently, into a
# fixed cache folder so that a rerun is fast:
#   - protoc from Debian (pinned version checked), protoc-gen-go and
#     protoc-gen-go-grpc from the Go module proxy (pinned versions).
# Usage: deploy/tools.sh [proto]
set -euo pipefail

TOOLS_DIR=${SHOAL_TOOLS_DIR:-/var/cache/shoal}
BIN="$TOOLS_DIR/bin"
PROTOC_VERSION="3.21.12"
PROTOC_GEN_GO_VERSION="v1.36.12"
PROTOC_GEN_GO_GRPC_VERSION="v1.5.1"

mkdir -p "$BIN"
export GOBIN="$BIN"

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

go_install() { # module@version binary
	local stamp="$BIN/.$2.version"
	if [ -x "$BIN/$2" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$1" ]; then
		return
	fi
	(cd / && go install "$1")
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

for what in "${@:-proto}"; do
	case "$what" in
	proto) install_proto ;;
	*) echo "tools.sh: unknown tool set $what" >&2; exit 2 ;;
	esac
done
