# Shoal's build. `make test` is the whole test suite (CI runs it);
# `make playground` starts a local cluster.
SHELL := /bin/bash
TOOLS_DIR ?= /var/cache/shoal
export SHOAL_TOOLS_DIR := $(TOOLS_DIR)
BIN := $(TOOLS_DIR)/bin
GO_TEST_FLAGS ?=
PROTO_FILES := $(wildcard proto/api/*.proto)

.PHONY: all build test unit e2e lint proto proto-check tools runtime-tools playground playground-status playground-down bench clean

all: build

# Static (CGO_ENABLED=0), so the binary can also serve as containers'
# init (`shoal init`, bind-mounted for tasks with --init).
build:
	CGO_ENABLED=0 go build -o bin/shoal ./cmd/shoal

# Every tool the build and the tests need (protoc and plugins; runc,
# containerd, its shim and a registry for the runtime tests).
tools:
	deploy/tools.sh proto runtime

# What the hosts of the playground and of the e2e tests run: runc,
# containerd with its shim, and the registry.
runtime-tools:
	deploy/tools.sh runtime

# Regenerate the API's Go code with the pinned tools.
proto: tools
	PATH="$(BIN):$$PATH" protoc -I . --go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative $(PROTO_FILES)

# Fail when the committed generated code differs from what the .proto
# files generate.
proto-check: tools
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	PATH="$(BIN):$$PATH" protoc -I . --go_out=$$tmp --go_opt=paths=source_relative \
		--go-grpc_out=$$tmp --go-grpc_opt=paths=source_relative $(PROTO_FILES); \
	for f in $$tmp/proto/api/*.go; do \
		if ! cmp -s $$f proto/api/$$(basename $$f); then \
			echo "proto/api/$$(basename $$f) is stale: run 'make proto' and commit the result"; exit 1; \
		fi; \
	done; \
	for f in proto/api/*.pb.go; do \
		[ -f $$tmp/proto/api/$$(basename $$f) ] || { echo "$$f has no .proto source: remove it"; exit 1; }; \
	done; echo "proto: generated code is current"

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	go vet ./...

# Packages run one at a time (-p 1): several tests bound recovery times
# (a new leader within 2 s), which must not depend on what else runs.
unit:
	go test $(GO_TEST_FLAGS) -p 1 -count=1 -timeout 30m $$(go list ./... | grep -v '/e2e$$')

# The end-to-end tests: real shoal daemons on this machine, most of them
# on several hosts made of network namespaces (deploy/lab). Set
# SHOAL_E2E_KEEP=1 to keep a failed test's hosts up for inspection.
e2e: build runtime-tools
	go test $(GO_TEST_FLAGS) -count=1 -timeout 30m ./e2e/

# The whole suite: tools, generated code, lint, unit tests, then e2e.
test: proto-check lint unit e2e

bench:
	go test -run '^$$' -bench . -benchtime 3s ./manager/...

# A cluster of 5 namespace hosts (3 managers) on this machine, running
# an example service.
playground: build runtime-tools
	bin/shoal playground up

playground-status: build
	bin/shoal playground status

playground-down: build
	bin/shoal playground down

clean:
	rm -rf bin
