# Build, run and check the project. `make test` is what CI runs.
GO        ?= go
STATICCHECK_VERSION := v0.8.2
GOBIN     := $(shell $(GO) env GOPATH)/bin
FUZZTIME  ?= 3s
BIN       := bin/pocket

.PHONY: all build run test vet staticcheck fmt-check unit fuzz bench bench-compare generate check-gen tools

all: build

build:
	$(GO) build -o $(BIN) ./tools/pocket

# run starts a local cluster on the embedded default (see README).
run: build
	./scripts/run-demo.sh $(BIN)

tools:
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck: tools
	$(GOBIN)/staticcheck ./...

unit:
	$(GO) test -race -count=1 -timeout 15m ./...

# fuzz runs each decoder's fuzz target for FUZZTIME; scripts/fuzz.sh finds them.
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

check-gen:
	./scripts/check-gen.sh

test: fmt-check vet staticcheck check-gen unit fuzz

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

bench-compare: build
	./perf/bench-compare.sh $(BIN)

generate:
	./scripts/generate.sh
