#!/usr/bin/env bash
# Runs every parser fuzz target (Sources/PGKeep/Fuzz/ParserFuzzTarget.swift) under libFuzzer for
# FUZZ_SECONDS each, from its seed corpus and regression inputs in Fixtures/fuzz/<target>/, into a
# throwaway working corpus (new inputs are not kept: a crash is, as an artifact to be fixed and
# then committed under Fixtures/fuzz/<target>/regressions/).
#
#   scripts/fuzz.sh <pgkeep-fuzz binary> [target...]     (all targets when none is named)
#
# FUZZ_SECONDS (default 60) per target; FUZZ_ARTIFACTS (default a temp directory) receives
# crash-*, leak-*, timeout-* and oom-* inputs; FUZZ_JOBS is not used: the targets run one after
# the other, each on one core.
# Prints one line per target (runs, coverage, corpus size, result) and exits 1 when any target
# found a crash, a hang or an out-of-memory input.
set -euo pipefail
binary=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${FUZZ_SECONDS:-60}
work=$(mktemp -d /tmp/pgkeep-fuzz.XXXXXX)
artifacts=${FUZZ_ARTIFACTS:-$work/artifacts}
mkdir -p "$artifacts"
trap 'rm -rf "$work/corpus" "$work/logs"' EXIT

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(ls "$root/Fixtures/fuzz")
fi

failed=()
printf '%-18s %10s %8s %8s  %s\n' target runs cov corpus result
for target in "${targets[@]}"; do
    seeds="$root/Fixtures/fuzz/$target"
    [ -d "$seeds" ] || { echo "fuzz: no seed corpus $seeds" >&2; exit 2; }
    corpus="$work/corpus/$target"
    log="$work/logs/$target.log"
    mkdir -p "$corpus" "$work/logs"
    # -max_len: the largest seed (a manifest body) is under 5 KB; inputs may grow to 8 KB.
    # -rss_limit_mb also caps a single allocation (malloc_limit_mb defaults to it): a parser
    # that sizes a buffer from a length field it has not checked fails as an "oom" input.
    # -timeout: one input taking over 10 s is a hang. SWIFT_BACKTRACE=enable=no: a Swift trap
    # is reported by libFuzzer's and ASan's handlers; Swift's own backtracer is slow and adds
    # nothing to the crash input.
    status=0
    SWIFT_BACKTRACE=enable=no PGKEEP_FUZZ_TARGET=$target \
        "$binary" -max_total_time="$seconds" -max_len=8192 -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$artifacts/$target-" "$corpus" "$seeds" >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
    corp=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
    if [ $status -eq 0 ]; then
        result=ok
    else
        result="FAILED (exit $status)"
        failed+=("$target")
    fi
    printf '%-18s %10s %8s %8s  %s\n' "$target" "${runs:-?}" "${cov:-?}" "${corp:-?}" "$result"
    if [ $status -ne 0 ]; then
        # What libFuzzer said about the input (the trap or ASan report and the artifact's path).
        grep -E 'ERROR|Fatal error|runtime failure|pgkeep-fuzz:|deadly signal|Test unit written|SUMMARY|Base64' "$log" | head -20 | sed 's/^/    /' || true
        cp "$log" "$artifacts/$target.log"
    fi
done

if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz: ${failed[*]} failed; inputs and logs in $artifacts" >&2
    echo "fuzz: reproduce with PGKEEP_FUZZ_TARGET=<target> <binary> <input>, or replay with the plain build: pgkeep-fuzz <target> <input>" >&2
    exit 1
fi
rm -rf "$work"
