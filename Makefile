# Skiff's two commands: `make run` (build and start one node on
# localhost:4001 with data in ./data) and `make test` (everything, with -race).
SHELL := /bin/bash
GO ?= go
VERSION ?= 0.1.0-dev
COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.buildTime=$(shell date -u +%Y-%m-%dT%H:%M:%SZ)
STATICCHECK_VERSION := 2026.2.2
GOBIN := $(shell $(GO) env GOPATH)/bin
DATA ?= ./data
TEST_TIMEOUT ?= 20m
BENCH_TIME ?= 5s
BENCH_RUNS ?= 3
# SQLite's column metadata names a result column's table (?qualify_columns);
# the preupdate hook feeds CDC; FTS5 is full-text search, which rqlite's
# SQLite has too. Exported so every go command, and the e2e tests' own build
# of skiffd, use them.
TAGS := sqlite_column_metadata,sqlite_preupdate_hook,sqlite_fts5
export GOFLAGS := $(strip $(GOFLAGS) -tags=$(TAGS))

.PHONY: all build run test test-unit test-e2e test-compat bench bench-cluster bench-cdc bench-security bench-backup bench-metrics bench-sysmon bench-gc bench-write-hold bench-contact bench-inprocess soak-restart failover verify fmt tools proto clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/skiffd ./cmd/skiffd
	$(GO) build -o bin/skiff ./cmd/skiff

## run: one node, HTTP on localhost:4001, Raft on localhost:4002, data in ./data.
run: build
	./bin/skiffd $(DATA)

## test: every package with the race detector, end-to-end tests included
## (they build and start the real skiffd).
test:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(GO) test -race -count=1 -tags=$(TAGS),failpoints ./sm/failpoint/

test-unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /test$$)

test-e2e:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) -v ./test/

## test-compat: gorqlite's own test suite (the rqlite Go client) against a
## skiffd process.
test-compat:
	$(GO) test -race -count=1 -run TestGorqliteSuite -v ./test/

## bench: bench-inprocess, then bench-cluster, bench-cdc, bench-security,
## bench-backup, bench-metrics, bench-sysmon and bench-gc.
bench: bench-inprocess bench-cluster bench-cdc bench-security bench-backup bench-metrics bench-sysmon bench-gc bench-write-hold bench-contact

## bench-sysmon: the cost of skiffd's runtime setting (cmd/skiffd/sysmon.go):
## inserts on two 3-node loopback clusters of bin/skiffd, A with the
## runtime's default (GODEBUG=schedtrace=0) and B as it runs, in alternating
## 2 s slices; B/A of req/s and of the nodes' CPU per insert.
bench-sysmon: build
	$(GO) run ./test/benchab -a bin/skiffd -a-env GODEBUG=schedtrace=0 -b bin/skiffd -workload insert -pairs 8

## bench-write-hold: the cost of -write-batch-hold (actors/replica/coalesce.go):
## inserts on two 3-node clusters of bin/skiffd, A without the hold and B as
## it runs, at 64 workers and then in an open loop at 6,000/s, in alternating
## slices; B/A of req/s and of the nodes' CPU per insert, and each side's p50/p99.
bench-write-hold: build
	$(GO) run ./test/benchab -a bin/skiffd -a-flags "-write-batch-hold 0" -b bin/skiffd -workload insert -pairs 8
	$(GO) run ./test/benchab -a bin/skiffd -a-flags "-write-batch-hold 0" -b bin/skiffd -workload insert -c 256 -rate 6000 -slice 4s -pairs 6

## bench-contact: what a follower pays to know when it last heard from its
## leader (actors/replica/raftnet/heard.go): the record kept for every
## message batch the transport delivers, in ns per batch.
bench-contact:
	$(GO) test -run '^$$' -bench 'BenchmarkHeardObserve' -count 3 ./actors/replica/raftnet/

## bench-gc: the cost of skiffd's GC target (cmd/skiffd/gcpercent.go): point
## reads, then inserts, on two 3-node clusters of bin/skiffd, A with Go's
## default (GOGC=100) and B as it runs, in alternating 2 s slices.
bench-gc: build
	$(GO) run ./test/benchab -a bin/skiffd -a-env GOGC=100 -b bin/skiffd -workload read -level none -pairs 8
	$(GO) run ./test/benchab -a bin/skiffd -a-env GOGC=100 -b bin/skiffd -workload insert -pairs 8

## bench-cluster: a 3-node loopback cluster driven over HTTP by `skiff bench`
## (writes and point reads on the leader and a follower), each figure with
## its ratio to raw SQLite doing the same statements in-process.
## PROFILE=dir also writes a CPU profile of the node under load per workload
## (go tool pprof -top bin/skiffd dir/insert--leader.prof).
PROFILE ?=
bench-cluster: build
	$(GO) run ./test/benchcluster -skiffd bin/skiffd -d $(BENCH_TIME) -runs $(BENCH_RUNS) $(if $(PROFILE),-profile $(PROFILE))

## bench-metrics: issue 19's cost of Prometheus metrics: point reads (none,
## weak) and inserts on 3-node loopback clusters with metrics on and with
## -metrics=false, in alternating rounds, with an A/A control cluster.
bench-metrics: build
	$(GO) run ./test/benchmetrics -skiffd bin/skiffd -d $(BENCH_TIME) -runs $(BENCH_RUNS)

## bench-cdc: issue 15's figures side by side on 3-node loopback clusters:
## inserts/s and node CPU per insert without CDC and with CDC to a webhook
## receiver in the bench process (and their ratios), the delivery lag p50/p99
## at half that insert rate, and statements/s ingested from NATS JetStream
## (embedded) against the same INSERTs over HTTP with the same concurrency.
bench-cdc: build
	$(GO) run ./test/benchcdc -skiffd bin/skiffd -d $(BENCH_TIME) -runs $(BENCH_RUNS)

## bench-security: issue 16's figures side by side on 3-node loopback
## clusters, in alternating rounds: point reads (level none and the default)
## and single-row inserts over HTTPS with keep-alive, and with -auth (Basic
## credentials on every request), each against plain HTTP: req/s, node CPU
## per request (the leader's and the three nodes'), their ratios, and the
## share of the leader's CPU that TLS adds; inserts with node-to-node TLS
## against without; and a second plain cluster as an A/A control (the
## run's noise). Shorter runs, more rounds than the other benches: the
## same time per variant, finer alternation against the machine's drift.
SEC_BENCH_TIME ?= 3s
SEC_BENCH_RUNS ?= 5
bench-security: build
	$(GO) run ./test/benchsec -skiffd bin/skiffd -d $(SEC_BENCH_TIME) -runs $(SEC_BENCH_RUNS)

## bench-inprocess: the write path through Dragonboat on one node against
## raw SQLite running the same INSERTs in-process, side by side in one run.
bench-inprocess:
	$(GO) test -run '^$$' -bench 'BenchmarkWritePath' -benchtime 5s -count 1 ./actors/replica/ | tee bench.out
	@awk '/^BenchmarkWritePath/ { split($$1, p, "/"); name=p[2]; sub(/-[0-9]+$$/, "", name); for (i = 2; i <= NF; i++) if ($$(i+1) == "inserts/s") r[name] = $$i } \
	  END { printf "\nwrite path, inserts/s:\n"; for (k in r) printf "  %-28s %12.0f\n", k, r[k]; \
	        if (r["raw-sqlite-full"] > 0) printf "  skiff / raw SQLite (synchronous=FULL, durable like Skiff): %.2f\n", r["skiff-c64"] / r["raw-sqlite-full"]; \
	        if (r["raw-sqlite-normal"] > 0) printf "  skiff / raw SQLite (synchronous=NORMAL, not durable):     %.2f\n", r["skiff-c64"] / r["raw-sqlite-normal"]; }' bench.out

## soak-restart: the recovery scenario at SIZE_MB (default 10000; not in
## CI): 3 nodes, the database loaded, a follower restarted after SIGTERM and
## after SIGKILL, a fourth node joining after a forced /snapshot, with
## /status, /nodes, /readyz and reads polled throughout. Needs about
## 6 x SIZE_MB of free disk under SOAK_DIR (default: a temporary directory
## here). POLL_PAUSE is each of the 8 pollers' pause between requests
## (10ms: about 500 polls/s in all); POLL_PAUSE=0 polls back to back, which
## alone keeps two cores over 90% busy, so the join then measures how the
## CPU is shared rather than the transfer.
SIZE_MB ?= 10000
SOAK_DIR ?=
POLL_PAUSE ?= 10ms
soak-restart: build
	$(GO) run ./test/soak -skiffd bin/skiffd -size-mb $(SIZE_MB) -poll-pause $(POLL_PAUSE) $(if $(SOAK_DIR),-dir $(SOAK_DIR))

## bench-backup: issue 18's figures: one automatic backup of a database of
## SIZE_MB (default here 200; the issue's figure: SIZE_MB=1000) to an S3
## server in the bench process, and one automatic restore from it: seconds,
## MB/s, peak RSS (VmHWM) of the node, and the ratio to cp+sync of the same
## SQLite file. Needs about 3 x SIZE_MB of disk under SOAK_DIR (default: a
## temporary directory here) and 2 x SIZE_MB of memory for the S3 server.
## Then /db/backup's three ways of writing the pinned state (streamed from
## the file, copied whole, SQLite's backup API) side by side in one process
## against cp+sync, on the same size.
BACKUP_SIZE_MB := $(if $(filter file,$(origin SIZE_MB)),200,$(SIZE_MB))
bench-backup: build
	$(GO) run ./test/benchbackup -skiffd bin/skiffd -size-mb $(BACKUP_SIZE_MB) $(if $(SOAK_DIR),-dir $(SOAK_DIR))
	SKIFF_BENCH_BACKUP_MB=$(BACKUP_SIZE_MB) $(GO) test -run '^$$' -bench 'BenchmarkBackupCopy' -benchtime 3x ./sm/

## failover: the failover nemesis (a benchmark, not a test): 3 nodes on
## loopback, 8 clients inserting through random nodes (one request at a
## time, 5 s timeout) with linearizable reads of what was acknowledged,
## the leader SIGKILLed and restarted KILLS times at random 3-6 s
## intervals (EVERY=5s: a fixed rhythm). Prints the longest gap without an
## acknowledged write after each kill, the time to answer the writes in
## flight at it, and the command to reproduce; fails if an acknowledged
## write was lost, a read was stale or the replicas differ.
KILLS ?= 20
EVERY ?=
failover: build
	$(GO) run ./test/failover -skiffd bin/skiffd -kills $(KILLS) $(if $(EVERY),-every $(EVERY))

## verify: formatting, vet and staticcheck.
verify: tools
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOBIN)/staticcheck ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

tools:
	@test -x $(GOBIN)/staticcheck && $(GOBIN)/staticcheck --version | grep -q '$(STATICCHECK_VERSION)' || \
	  $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2

## proto: regenerate sm/cmdpb (needs protoc and protoc-gen-go).
proto:
	cd sm/cmdpb && protoc --go_out=. --go_opt=paths=source_relative command.proto

clean:
	rm -rf bin bench.out
