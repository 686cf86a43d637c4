# Build, run and check the project. `make test` is what CI runs.
GO        ?= go
STATICCHECK_VERSION := v0.8.2
GOBIN     := $(shell $(GO) env GOPATH)/bin
FUZZTIME  ?= 3s
BIN       := bin/pocket
# The interpreter Debian's python3-pytest and python3-flatbuffers belong to
# (another Python may come first on PATH).
PYTHON    ?= /usr/bin/python3

.PHONY: all build run test vet staticcheck fmt-check unit fuzz pytest bench bench-compare bench-python generate check-gen tools

all: build

build:
	$(GO) build -buildvcs=auto -o $(BIN) ./tools/pocket

# run starts a local cluster on the embedded default (see README), its
# controller on $POCKET_ADDR (default 127.0.0.1:7000): POCKET_ADDR=HOST:PORT
# make run when that port is taken.
run: build
	./scripts/run-demo.sh $(BIN)

tools:
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# fmt-check reads the tracked Go files, or every Go file outside a git
# checkout (an export: before, git's error was printed and nothing
# checked, and gofmt given no file would read its standard input).
fmt-check:
	@files=$$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'); \
	if [ -z "$$files" ]; then echo "fmt-check: no Go files found"; exit 1; fi; \
	out=$$(gofmt -l $$files); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

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

# pytest runs the Python client's suite (python/tests) against a cluster it
# starts with a freshly built pocket up, and stops.
pytest:
	$(PYTHON) -m pytest -q python/tests

test: fmt-check vet staticcheck check-gen unit fuzz pytest

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# bench-python measures the Python client against redis-py (1 KiB) and the
# Go SDK (64 MiB) on one local cluster; see python/README.md.
bench-python: build
	$(PYTHON) python/bench/bench.py --pocket $(BIN)

bench-compare: build
	./perf/bench-compare.sh $(BIN)

generate:
	./scripts/generate.sh
