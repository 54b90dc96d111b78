#!/usr/bin/env bash
# Installs Shoal on a Debian host, idempotently (a rerun changes only what
# differs, and is how an upgrade is installed):
#   - the shoal binary (default: bin/shoal of this repository, from
#     `make build`) as /usr/local/bin/shoal;
#   - runc from Debian, if missing;
#   - containerd and containerd-shim-runc-v2 into /usr/local/bin, from
#     $SHOAL_TOOLS_DIR/bin (default /var/cache/shoal/bin, built by
#     `deploy/tools.sh runtime`), unless a containerd is already installed
#     in /usr/bin or /usr/local/bin;
#   - shoal.service, and containerd.service for a containerd in
#     /usr/local/bin, into /etc/systemd/system; /etc/default/shoal and
#     /etc/containerd/config.toml only where absent (an operator's
#     configuration is never overwritten);
#   - then, on a host running systemd, enables and starts containerd.
# Shoal itself is not started: its first start needs --init or --join in
# /etc/default/shoal. The script says what to put there.
#
# Usage: deploy/install.sh [--root DIR] [--bin PATH] [--no-start]
#   --root DIR   install under DIR instead of / (a staging folder, an image,
#                a test); then no Debian package is installed and nothing
#                is started
#   --bin PATH   the shoal binary to install (default: bin/shoal here)
#   --no-start   do not run systemctl
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UNITS="$REPO/deploy/systemd"
TOOLS_BIN="${SHOAL_TOOLS_DIR:-/var/cache/shoal}/bin"
# Units carrying this line were written by this script, which may rewrite
# them; any other unit of the same name is the operator's and is kept.
MARKER="Installed by Shoal's deploy/install.sh"

ROOT=/
BIN=
START=1

usage() {
	echo "usage: deploy/install.sh [--root DIR] [--bin PATH] [--no-start]"
}

die() {
	echo "install.sh: $*" >&2
	exit 1
}

while [ $# -gt 0 ]; do
	case "$1" in
	--root) [ $# -ge 2 ] || die "--root needs a folder"; ROOT=$2; shift 2 ;;
	--root=*) ROOT=${1#--root=}; shift ;;
	--bin) [ $# -ge 2 ] || die "--bin needs the path of a shoal binary"; BIN=$2; shift 2 ;;
	--bin=*) BIN=${1#--bin=}; shift ;;
	--no-start) START=0; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; echo "install.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done

[ -n "$ROOT" ] || die "--root needs a folder"
if [ "$ROOT" != / ]; then
	mkdir -p -- "$ROOT" || die "cannot create --root $ROOT"
fi
ROOT=$(cd -- "$ROOT" && pwd -P)
P=${ROOT%/} # prefix of every installed path: "" when ROOT is /
LIVE=0      # installing into this host itself
[ "$ROOT" = / ] && LIVE=1

if [ $LIVE = 1 ] && [ "$(id -u)" != 0 ]; then
	die "installing into / needs root: run it with sudo (or use --root DIR to stage the files in a folder)"
fi

if [ -z "$BIN" ]; then
	BIN="$REPO/bin/shoal"
	[ -e "$BIN" ] || die "no shoal binary at $BIN: build it with \`make build\` in $REPO (or pass --bin PATH)"
fi
[ -e "$BIN" ] || die "--bin $BIN: no such file: build the binary with \`make build\` (it lands in bin/shoal), or give the path of one"
[ -f "$BIN" ] || die "--bin $BIN is not a file: give the path of a shoal binary (\`make build\` makes bin/shoal)"
[ -x "$BIN" ] || die "--bin $BIN is not executable: rebuild it with \`make build\` or chmod +x it"
for u in shoal.service containerd.service shoal.default; do
	[ -f "$UNITS/$u" ] || die "$UNITS/$u is missing: run the script from a complete Shoal source tree"
done

# A temporary file being installed, removed if the script stops half-way.
PENDING=
trap 'if [ -n "$PENDING" ]; then rm -f -- "$PENDING"; fi' EXIT

# put SRC DEST MODE: makes DEST a copy of SRC with MODE, unless it already
# is one. The copy is written beside DEST and renamed over it, so a reader
# never sees half a file and a running binary can be replaced (writing
# into it would fail with "text file busy").
put() {
	local src=$1 dest=$2 mode=$3
	if [ -f "$dest" ] && cmp -s -- "$src" "$dest" && [ "$(stat -c %a -- "$dest")" = "${mode#0}" ]; then
		echo "  unchanged  $dest"
		return
	fi
	mkdir -p -- "$(dirname -- "$dest")"
	PENDING=$(mktemp "$(dirname -- "$dest")/.$(basename -- "$dest").XXXXXX")
	cp -- "$src" "$PENDING"
	chmod "$mode" -- "$PENDING"
	mv -f -- "$PENDING" "$dest"
	PENDING=
	echo "  installed  $dest"
}

# put_new SRC DEST MODE: installs DEST only if it does not exist.
put_new() {
	if [ -e "$2" ] || [ -L "$2" ]; then
		echo "  kept       $2 (exists; not overwritten)"
		return
	fi
	put "$@"
}

# put_unit SRC DEST: installs a unit unless DEST is someone else's.
put_unit() {
	if [ -e "$2" ] && ! grep -qF "$MARKER" -- "$2"; then
		echo "  kept       $2 (not written by install.sh; compare it with $1)"
		return
	fi
	put "$1" "$2" 0644
}

# The default containerd configuration: Shoal uses containerd's own API,
# not Kubernetes' CRI, so the CRI plugins (and NRI) are off. Version 3 is
# read by every containerd 2.x (2.4 and later log that they migrate it).
containerd_config() {
	cat <<'EOF'
# containerd configuration written by Shoal's deploy/install.sh because
# none existed. It is yours to edit: the script never overwrites it.
# Shoal talks to containerd's own API on /run/containerd/containerd.sock,
# not to Kubernetes' CRI, so the CRI plugins are disabled.
# Version 3 suits every containerd 2.x; from 2.4 on, containerd logs a
# warning that it migrates it: `containerd config migrate` prints the
# newer form, to put here if you like.
version = 3
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.cri.v1.images",
  "io.containerd.cri.v1.runtime",
  "io.containerd.podsandbox.controller.v1.podsandbox",
  "io.containerd.nri.v1.nri",
]
EOF
}

echo "Installing Shoal into $ROOT"

# 1. Shoal.
SHOAL_BEFORE=
[ -f "$P/usr/local/bin/shoal" ] && SHOAL_BEFORE=$(cksum <"$P/usr/local/bin/shoal")
put "$BIN" "$P/usr/local/bin/shoal" 0755
SHOAL_CHANGED=0
[ "$SHOAL_BEFORE" = "$(cksum <"$P/usr/local/bin/shoal")" ] || SHOAL_CHANGED=1

# 2. runc, which containerd's shim runs.
if [ $LIVE = 1 ]; then
	if command -v runc >/dev/null || [ -x /usr/sbin/runc ] || [ -x /usr/local/sbin/runc ]; then
		echo "  found      runc"
	else
		command -v apt-get >/dev/null ||
			die "runc is missing and apt-get is not available: install runc (1.1 or later) with the system's package manager, then rerun"
		echo "  installing runc from Debian"
		apt-get update -qq || die "apt-get update failed: check the host's APT sources and network, then rerun"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends runc >/dev/null ||
			die "apt-get install runc failed: install the runc package by hand, then rerun"
	fi
else
	echo "  skipped    runc (with --root: install Debian's runc package on the target host)"
fi

# 3. containerd. A distribution's containerd (/usr/bin) comes with its own
# unit and configuration, which are left alone; one in /usr/local/bin gets
# ours.
CTRD=
if [ -e "$P/usr/local/bin/containerd" ]; then
	CTRD=local
	echo "  found      $P/usr/local/bin/containerd (kept)"
	if [ -x "$TOOLS_BIN/containerd" ] && ! cmp -s -- "$TOOLS_BIN/containerd" "$P/usr/local/bin/containerd"; then
		echo "  note       $TOOLS_BIN/containerd differs from it; to upgrade, see docs/deploy.md"
	fi
	if [ ! -e "$P/usr/local/bin/containerd-shim-runc-v2" ] && [ ! -e "$P/usr/bin/containerd-shim-runc-v2" ]; then
		if [ -x "$TOOLS_BIN/containerd-shim-runc-v2" ]; then
			put "$TOOLS_BIN/containerd-shim-runc-v2" "$P/usr/local/bin/containerd-shim-runc-v2" 0755
		else
			echo "install.sh: warning: no containerd-shim-runc-v2 beside $P/usr/local/bin/containerd: containerd cannot run containers without it (build it with \`deploy/tools.sh runtime\` and rerun)" >&2
		fi
	fi
elif [ -e "$P/usr/bin/containerd" ]; then
	CTRD=distro
	echo "  found      $P/usr/bin/containerd (kept, with its package's unit and configuration)"
	if [ $LIVE = 1 ]; then
		version=$(/usr/bin/containerd --version 2>/dev/null | awk '{print $3}')
		case "$version" in
		v2.* | 2.*) ;;
		*) echo "install.sh: warning: /usr/bin/containerd is version ${version:-unknown}; Shoal needs containerd 2.x (remove the distribution's package and rerun to install one from \`deploy/tools.sh runtime\`)" >&2 ;;
		esac
	fi
else
	for b in containerd containerd-shim-runc-v2; do
		[ -x "$TOOLS_BIN/$b" ] ||
			die "containerd is not installed and $TOOLS_BIN/$b is missing: build it with \`deploy/tools.sh runtime\` (needs Go; SHOAL_TOOLS_DIR chooses the folder), or install containerd 2.x into /usr/local/bin yourself, then rerun"
	done
	# The shim first: a containerd in place implies its shim is too.
	put "$TOOLS_BIN/containerd-shim-runc-v2" "$P/usr/local/bin/containerd-shim-runc-v2" 0755
	put "$TOOLS_BIN/containerd" "$P/usr/local/bin/containerd" 0755
	CTRD=local
fi

# 4. Units and configuration.
put_unit "$UNITS/shoal.service" "$P/etc/systemd/system/shoal.service"
# 0600: the file may hold a join token.
put_new "$UNITS/shoal.default" "$P/etc/default/shoal" 0600
if [ $CTRD = local ]; then
	put_unit "$UNITS/containerd.service" "$P/etc/systemd/system/containerd.service"
	if [ -e "$P/etc/containerd/config.toml" ]; then
		echo "  kept       $P/etc/containerd/config.toml (exists; not overwritten)"
	else
		config=$(mktemp)
		containerd_config >"$config"
		put "$config" "$P/etc/containerd/config.toml" 0644
		rm -f -- "$config"
	fi
fi

# 5. Start containerd.
if [ $LIVE = 0 ]; then
	echo "Nothing started (--root)."
elif [ $START = 0 ]; then
	echo "Nothing started (--no-start)."
elif [ ! -d /run/systemd/system ]; then
	echo "Nothing started: systemd is not running on this host. Start containerd, then \`shoal daemon\`, some other way."
else
	systemctl daemon-reload
	systemctl enable --now containerd ||
		die "containerd did not start: see \`journalctl -u containerd\`, fix it, then rerun"
	echo "containerd is enabled and running."
fi

# 6. What next.
echo
if [ -e "$P/var/lib/shoal/node.json" ]; then
	echo "This host already holds a Shoal node (/var/lib/shoal)."
	if [ $SHOAL_CHANGED = 1 ]; then
		echo "Use the new binary with: systemctl restart shoal   (containers keep running)"
	fi
else
	cat <<EOF
Next, on this host:
  1. Set SHOAL_OPTS in /etc/default/shoal, for the first manager of a new cluster:
         SHOAL_OPTS="--init --listen-addr THIS_HOST_IP:4242"
     or to join a cluster (get TOKEN on a manager: shoal cluster join-token worker|manager -q):
         SHOAL_OPTS="--join MANAGER_IP:4242 --token TOKEN --listen-addr THIS_HOST_IP:4242"
  2. systemctl enable --now shoal
     (\`journalctl -u shoal\` shows "is serving on"; later starts resume the
     node and ignore --init/--join)
EOF
fi
