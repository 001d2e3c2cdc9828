# pecet: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
BIN := bin
DEV_DIR ?= .pecet-dev
MODULE := github.com/pecet-hsm/pecet
# The build records `git describe` itself: GOFLAGS may carry -buildvcs=false,
# and then the toolchain stamps no commit (see internal/version).
VERSION ?= $(shell git describe --always --dirty 2>/dev/null)
LDFLAGS := -X $(MODULE)/internal/version.Version=$(VERSION)

.PHONY: run test deps build generate check-generate vet lint fuzz fuzz-ci bench soak clean

## run: install what is missing, build, and start pecetd --dev on a local SoftHSM token
run: deps build
	$(BIN)/pecetd --dev --dev-dir $(DEV_DIR)

## test: lint (which includes vet), the whole suite with the race detector, each benchmark once
test: deps lint
	$(GO) test -race -count=1 ./...
	$(GO) test -run '^$$' -bench . -benchtime=1x ./...

## deps: SoftHSM2, OpenSSL and OpenSC from apt when missing (sudo only when not root)
deps:
	@./scripts/deps.sh

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/pecetd ./cmd/pecet

## generate: regenerate api/ from the .proto with buf and the plugins, all pinned as tools in go.mod
## (buf.gen.yaml; buf compiles the .proto itself, so no system protoc is involved)
generate:
	$(GO) tool buf generate

## check-generate: fail when the committed generated code differs from a fresh generation
check-generate: generate
	@git diff --exit-code -- api/ || { echo "generated code in api/ is stale: run make generate and commit"; exit 1; }

vet:
	$(GO) vet ./...

## lint: go vet, then golangci-lint (pinned as a tool in go.mod) with .golangci.yml
lint: vet
	$(GO) tool golangci-lint run ./...

## fuzz: every Fuzz target for FUZZTIME each (default 10s; scripts/fuzz.sh); fuzz-ci: 3 s each, what CI runs (docs/reliability.md)
FUZZTIME ?= 10s
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

fuzz-ci:
	$(MAKE) --no-print-directory fuzz FUZZTIME=3s

bench:
	$(GO) test -run '^$$' -bench . ./...

## soak: the soak of docs/reliability.md against a real pecetd built with -tags faultinject (SOAK=10m)
SOAK ?= 10m
soak: deps
	$(GO) run ./scripts/perf soak --duration $(SOAK)

clean:
	rm -rf $(BIN)
