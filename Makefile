# pgkeep: make deps | build | release | install | test | fuzz | demo | bench
SHELL := /bin/bash
PG_BIN ?= /usr/lib/postgresql/15/bin
SWIFT_BUILD_FLAGS ?=
# A target may import only the targets it declares (Package.swift, ARCHITECTURE.md §1.2); without
# this check an incremental build lets a file import any module built earlier.
IMPORT_CHECK := --explicit-target-dependency-import-check error
RELEASE_FLAGS := -c release --static-swift-stdlib
# The libFuzzer build of pgkeep-fuzz, in its own scratch directory so that the sanitizers never
# reach the normal build. FUZZ_SECONDS per target for `make fuzz`, FUZZ_TEST_SECONDS in `make test`.
FUZZ_BUILD := swift build -c release --product pgkeep-fuzz --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -DPGKEEP_FUZZ
FUZZ_SECONDS ?= 60
FUZZ_TEST_SECONDS ?= 5
FUZZ_TARGETS ?=

.PHONY: deps build release install test unit integration matrix fuzz demo bench soak clean

# Everything a fresh Debian 12 machine needs; idempotent (installs only what is missing).
deps:
	@PGKEEP_PG_ROOT=$(PGKEEP_PG_ROOT) bash scripts/deps.sh

build: deps
	swift build $(IMPORT_CHECK) $(SWIFT_BUILD_FLAGS)

# The shipped binary: static Swift runtime, so start-up (PostgreSQL execs archive-push per
# segment) pays no dynamic loading of the Swift libraries.
release: deps
	swift build $(RELEASE_FLAGS)
	@echo "binary: $$(swift build $(RELEASE_FLAGS) --show-bin-path)/pgkeep"

# The release binary, pgkeep(1), bash and zsh completion, pgkeep.conf.example and the systemd
# units for scheduled backups (scripts/install.sh; PREFIX=/usr/local, SYSCONFDIR=/etc,
# SYSTEMDUNITDIR=/etc/systemd/system, DESTDIR for packaging).
install: release
	@bash scripts/install.sh "$$(swift build $(RELEASE_FLAGS) --show-bin-path)/pgkeep"

# Unit tests (which replay Fixtures/fuzz), each parser fuzz target briefly, then integration tests
# against real PostgreSQL 15 clusters (one built binary shared).
# Integration tests run one at a time (--no-parallel): several clusters, pgbench loads and timed
# kills on a 2-core machine at once starve each other and make fault tests race.
test: deps
	swift build --build-tests $(IMPORT_CHECK) $(SWIFT_BUILD_FLAGS)
	swift test --skip-build --filter PGKeepTests
	$(FUZZ_BUILD)
	FUZZ_SECONDS=$(FUZZ_TEST_SECONDS) bash scripts/fuzz.sh "$$($(FUZZ_BUILD) --show-bin-path)/pgkeep-fuzz"
	PGKEEP_BIN=$$(swift build --show-bin-path)/pgkeep swift test --skip-build --no-parallel --filter IntegrationTests
	$(MATRIX_RUN)

# The version matrix (docs/postgres-versions.md): after the whole integration suite on 15, its core
# tests again on each later major, one major at a time: full and incr backups under pgbench with
# dump equality and amcheck, a full/diff/incr chain restored backup by backup and by --delta, PITR
# to time, xid, lsn, name and immediate targets, verify of a block-incremental chain, asynchronous
# archive-push with a killed pusher and archive-get prefetching for recovery, a tablespace, check, a selective restore.
PGKEEP_PG_ROOT ?= /opt/pgkeep-deps/postgresql
MATRIX_MAJORS ?= 16 17 18
MATRIX_TESTS := IntegrationTests\.(IncrementalBackupTests/(backupUnderLoad|chainRestoresEachBackup)|PointInTimeTests/targets|VerifyExpireTests/verifyIncrementalChain|AsyncArchiveTests/(asyncPushSurvivesAKilledPusher|asyncGetPrefetchesForRecovery)|FullBackupRestoreTests/tablespaceRestores|DailyCommandsTests/checkPasses|SelectiveRestoreTests)
MATRIX_RUN = for major in $(MATRIX_MAJORS); do \
		echo "== version matrix: PostgreSQL $$major"; \
		PGKEEP_PG_BINDIR=$(PGKEEP_PG_ROOT)/$$major/bin PGKEEP_BIN=$$(swift build --show-bin-path)/pgkeep \
			swift test --skip-build --no-parallel --filter '$(MATRIX_TESTS)' || exit 1; \
	done

# Only the version matrix, on an already built tree.
matrix: deps
	swift build --build-tests $(IMPORT_CHECK) $(SWIFT_BUILD_FLAGS)
	$(MATRIX_RUN)

unit: deps
	swift test $(SWIFT_BUILD_FLAGS) --filter PGKeepTests

integration: deps
	swift build --build-tests $(IMPORT_CHECK) $(SWIFT_BUILD_FLAGS)
	PGKEEP_BIN=$$(swift build --show-bin-path)/pgkeep swift test --skip-build --no-parallel --filter IntegrationTests

# A bounded soak (not part of test): pgbench with async archiving while the pusher and backups
# are SIGKILLed at random and expire runs; ends with a restore equal to the source and a clean
# verify. SOAK_SECONDS=300 by default; SOAK_SEED repeats a run's random choices.
SOAK_SECONDS ?= 300
soak: deps
	swift build --build-tests $(IMPORT_CHECK) $(SWIFT_BUILD_FLAGS)
	PGKEEP_BIN=$$(swift build --show-bin-path)/pgkeep PGKEEP_SOAK_SECONDS=$(SOAK_SECONDS) $(if $(SOAK_SEED),PGKEEP_SOAK_SEED=$(SOAK_SEED)) \
		swift test --skip-build --no-parallel --filter IntegrationTests.SoakTests

# Every parser of untrusted bytes under libFuzzer for FUZZ_SECONDS each (FUZZ_TARGETS="manifest
# block-map" for some), from the seeds in Fixtures/fuzz; fails when a target crashes.
fuzz: deps
	$(FUZZ_BUILD)
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh "$$($(FUZZ_BUILD) --show-bin-path)/pgkeep-fuzz" $(FUZZ_TARGETS)

# The main job on a throwaway local cluster: stanza-create, archiving, full backup, more writes,
# restore into a new directory, start it, show the rows came back, print info.
demo: build
	@bash scripts/demo.sh "$$(swift build --show-bin-path)/pgkeep"

# pgkeep against pgBackRest 2.45 (installed here, not by deps) on a throwaway cluster, with the
# release binary. BENCH_SCALE=0.05 BENCH_ROUNDS=2 for a quick run; see bench/README.md.
bench: deps
	swift build $(RELEASE_FLAGS)
	@bash bench/bench.sh "$$(swift build $(RELEASE_FLAGS) --show-bin-path)/pgkeep"

clean:
	rm -rf .build .build-fuzz
