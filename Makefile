# fhirlake build. Everything a fresh machine needs (Go modules, staticcheck)
# is fetched by these targets themselves; DuckDB comes as a prebuilt static
# library inside the duckdb-go module, so only Go and gcc (cgo) are needed.

GO        ?= go
TAGS      := duckdb_arrow
BIN       := bin/fhirlake
TOOLS     := $(CURDIR)/.tools
# The commit fhirlake --version names (empty outside a git checkout).
COMMIT    := $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo ", modified")
STATICCHECK_VERSION := v0.8.2
VERSITYGW_VERSION   := v1.8.0

.PHONY: all build test demo lint bench pgo fuzz clean postgresql

all: build

build:
	$(GO) build -tags $(TAGS) -ldflags "-X 'main.commit=$(COMMIT)'" -o $(BIN) ./cmd/fhirlake

# vet, the SQL-on-FHIR v2 conformance suite (../shared/fixtures/sof-tests,
# report in sof-report.json; any failure fails the target), the Airflow
# example byte-compiled, and every Go test, including the end-to-end runs
# against the in-process sandbox payer.
SOF_SUITE := ../shared/fixtures/sof-tests

test: build $(TOOLS)/versitygw postgresql
	$(GO) vet -tags $(TAGS) ./...
	@if [ -d $(SOF_SUITE) ]; then \
		echo "SQL-on-FHIR v2 conformance ($(SOF_SUITE)):"; \
		./$(BIN) views test --suite $(SOF_SUITE) --report sof-report.json || exit 1; \
	else echo "skipping SQL-on-FHIR conformance: $(SOF_SUITE) not found"; fi
	@command -v python3 >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 >/dev/null)
	PYTHONPYCACHEPREFIX=$${TMPDIR:-/tmp}/fhirlake-pycache python3 -m py_compile examples/airflow/fhirlake_dag.py
	FHIRLAKE_VERSITYGW=$(TOOLS)/versitygw $(GO) test -tags $(TAGS) -count=1 ./...

# The tests and benchmarks that need a PostgreSQL catalog start their own
# server (initdb as the postgres user) from Debian's package.
postgresql:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null) || \
		echo "postgresql not installed: the tests that need it will skip"

# Start the sandbox payer in-process, export, transform, load, print a query.
demo: build
	./$(BIN) --log-level warn demo --dir fhirlake-demo

lint: $(TOOLS)/staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags $(TAGS) ./...
	$(TOOLS)/staticcheck -tags $(TAGS) ./...

$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# versitygw: an S3-compatible object store (posix backend) for the Iceberg
# lake tests (internal/testserver). The first build takes minutes.
# `make .tools/versitygw` builds it alone.
.tools/versitygw $(TOOLS)/versitygw:
	GOBIN=$(TOOLS) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

# Benchmarks. First the user's whole job on both sides (BenchmarkEndToEnd):
# `fhirlake load` of a five-year export into a fresh warehouse and lake
# against the DuckDB-native pipeline building the same 14 tables and their
# Parquet, alternating, at FHIRLAKE_BENCH_E2E_MB sizes (default 250,1000),
# with peak RSS, bytes written and a 1% incremental run; it prints a
# table. Then the transform alone against DuckDB's read_ndjson
# (FHIRLAKE_BENCH_MB, default 500), download throughput by concurrency, and
# the lake formats, and many workers writing one Iceberg lake (runs per
# minute with 1, 2 and 4 concurrent fhirlake processes, S3 and PostgreSQL).
# The transform benchmarks are built with the CLI's profile (see pgo), so
# they measure the code the fhirlake binary runs.
PGO_PROFILE := $(CURDIR)/cmd/fhirlake/default.pgo

bench: build $(TOOLS)/versitygw postgresql
	FHIRLAKE_BIN=$(CURDIR)/$(BIN) FHIRLAKE_BENCH_MB=$${FHIRLAKE_BENCH_MB:-500} $(GO) test -tags $(TAGS) -pgo=$(PGO_PROFILE) -run '^$$' -bench . -benchtime 1x -timeout 30m ./internal/bench/
	$(GO) test -tags $(TAGS) -run '^$$' -bench . -benchtime 3x ./extract/
	FHIRLAKE_VERSITYGW=$(TOOLS)/versitygw $(GO) test -tags $(TAGS) -run '^$$' -bench Lakes -benchtime 3x -timeout 30m ./internal/pipeline/
	FHIRLAKE_VERSITYGW=$(TOOLS)/versitygw $(GO) test -tags $(TAGS) -run '^$$' -bench Workers -benchtime 2x -timeout 30m ./cmd/fhirlake/

# Fuzzing: every fuzz target (func FuzzX in a *_test.go) for FUZZTIME
# each (default 60s), one after another, with a summary line per target.
# `make test` already runs every target's seed corpus. See scripts/fuzz.sh.
FUZZTIME ?= 60s

fuzz:
	GO=$(GO) TAGS=$(TAGS) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

# Profile-guided optimisation: cmd/fhirlake/default.pgo is a CPU profile
# of the transform benchmarks (every built-in view over the EOB and the
# Observation workloads), cut to the transform's own goroutines. go build
# applies a main package's default.pgo by itself. Regenerate it after
# changing the transform's hot paths; a stale profile only optimises less.
pgo:
	$(GO) test -tags $(TAGS) -pgo=$(PGO_PROFILE) -c -o $(TOOLS)/bench.test ./internal/bench/
	cd $(TOOLS) && FHIRLAKE_BENCH_MB=200 ./bench.test -test.run '^$$' -test.bench 'Transform(EOB|Observation)$$' -test.benchtime 3x -test.cpuprofile pgo.raw
	$(GO) tool pprof -proto -focus 'transform\.\(\*Engine\)\.Transform' $(TOOLS)/bench.test $(TOOLS)/pgo.raw > $(PGO_PROFILE).tmp
	mv $(PGO_PROFILE).tmp $(PGO_PROFILE)

clean:
	rm -rf bin fhirlake-demo .tools sof-report.json
