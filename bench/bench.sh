#!/usr/bin/env bash
# make bench: pgkeep against pgBackRest on one throwaway PostgreSQL 15 cluster.
#
#   bench/bench.sh <pgkeep binary>          (make bench builds the release binary and calls this)
#
# Environment:
#   BENCH_SCALE=1.0       data size factor: 1.0 = pgbench -s 100 (~1.6 GB) + a ~1.3 GB table;
#                         0.05 = pgbench -s 5 + a ~65 MB table (quick development runs)
#   BENCH_ROUNDS=3        rounds per case; each round runs pgkeep then pgBackRest (A B A B ...)
#   BENCH_WAL_SEGMENTS    real 16 MiB WAL segments for archive-push/get (default 100 x scale, 10..100)
#   BENCH_CASES           extended regex: only cases whose name matches run (e.g. 'full|restore')
#   BENCH_TMPDIR=/var/tmp where the work directory goes (cluster, repositories, restores)
#   BENCH_KEEP=1          keep the work directory
#   BENCH_RESULTS         where latest.json/latest.txt go (default bench/results)
#
# Everything (cluster, repositories) lives in one work directory removed at the end; the cluster
# is stopped by a trap. As root, PostgreSQL, pgkeep and pgBackRest run as the postgres OS user.
# Each timed command runs under `benchlib.py measure`, which records wall time, CPU (user+sys of
# the whole process tree, from wait4) and peak RSS (sum over the tree, sampled from /proc).
set -euo pipefail
binary=${1:?usage: bench.sh <pgkeep binary>}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pg_bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
pgbackrest_bin=${PGBACKREST_BIN:-/usr/bin/pgbackrest}
scale=${BENCH_SCALE:-1.0}
rounds=${BENCH_ROUNDS:-3}
case_filter=${BENCH_CASES:-.}
results_dir=${BENCH_RESULTS:-$here/results}
lib=(python3 "$here/benchlib.py")

calc() { python3 -c "import math; print($1)"; }
pgbench_scale=$(calc "max(1, round(100 * $scale))")
mixed_rows=$(calc "max(10000, round(14000000 * $scale))")
wal_segments=${BENCH_WAL_SEGMENTS:-$(calc "min(100, max(10, round(100 * $scale)))")}
sample_bytes=$(calc "int(max(32, min(256, 256 * $scale * 4)) * 1024 * 1024)")

# ---------------------------------------------------------------------------------------------
# Tools: pgBackRest comes from Debian (2.45 on Debian 12), with the CLI codecs used for the
# single-core reference speeds. Only bench needs them, so only bench installs them.
need=()
for p in pgbackrest lz4 zstd openssl python3; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "bench: installing ${need[*]}"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# ---------------------------------------------------------------------------------------------
# Work directory, users, cleanup.
work=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/pgkeep-bench.XXXXXX")
chmod 755 "$work"
as_pg=()
measure_user=()
if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$work"
    as_pg=(runuser -u postgres --)
    measure_user=(--user postgres)
fi
run() { "${as_pg[@]}" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
note() { printf '   %s\n' "$*"; }
data=$work/data

cleanup() {
    local rc=$?
    for d in "$data" "$work/restore"; do
        [ -f "$d/postmaster.pid" ] && run "$pg_bin/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1 || true
    done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

run mkdir -p "$work/bin" "$work/sock" "$work/walpool" "$work/logs" "$work/lock-pgkeep" "$work/lock-pgbackrest" \
    "$work/log-pgbackrest"
cp "$binary" "$work/bin/pgkeep"
chmod 755 "$work/bin/pgkeep"
port=$((57000 + RANDOM % 1000))
stanza=bench
runs=$work/runs.jsonl
cases=$work/cases.jsonl
: >"$runs"
: >"$cases"

# Both tools get a config file of their own with the same cluster and separate repositories.
cat >"$work/pgkeep.conf" <<CONF
[global]
repo1-path=$work/repo-pgkeep
lock-path=$work/lock-pgkeep
compress-type=lz4
compress-level=1
log-level-console=warn

[$stanza]
pg1-path=$data
pg1-socket-path=$work/sock
pg1-port=$port
CONF
cat >"$work/pgbackrest.conf" <<CONF
[global]
repo1-path=$work/repo-pgbackrest
lock-path=$work/lock-pgbackrest
log-path=$work/log-pgbackrest
log-level-file=off
log-level-console=warn
compress-type=lz4
compress-level=1
start-fast=y
repo1-retention-full=9999999

[$stanza]
pg1-path=$data
pg1-socket-path=$work/sock
pg1-port=$port
CONF
chmod 644 "$work/pgkeep.conf" "$work/pgbackrest.conf"
pgk=("$work/bin/pgkeep" "--config=$work/pgkeep.conf" "--stanza=$stanza")
pgbr=("$pgbackrest_bin" "--config=$work/pgbackrest.conf" "--stanza=$stanza")
tool_cmd() { if [ "$1" = pgkeep ]; then echo "${pgk[*]}"; else echo "${pgbr[*]}"; fi; }

psql() { run "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$work/sock" -p "$port" -d postgres "$@"; }
psql_value() { psql -At -c "$1"; }

# archive_command while loading data: keep the first $wal_segments completed segments as the
# archive-push sample, archive nothing else. During the benchmark: both tools' archive-push, so
# both archives are complete (pgkeep's backup waits for its WAL in its own archive).
archive_off="test \$(ls $work/walpool | wc -l) -ge $wal_segments || cp %p $work/walpool/%f"
archive_on="$(tool_cmd pgkeep) archive-push %p && $(tool_cmd pgbackrest) archive-push %p"
set_archive_command() {
    psql -c "ALTER SYSTEM SET archive_command = \$bench\$$1\$bench\$"
    psql -c "SELECT pg_reload_conf()" >/dev/null
}
wait_archived() {
    psql -At -c "SELECT pg_switch_wal()" >/dev/null
    local target
    target=$(psql_value "SELECT pg_walfile_name(pg_current_wal_lsn() - 1)")
    for _ in $(seq 1 600); do
        [ "$(psql_value "SELECT coalesce(last_archived_wal >= '$target', false) FROM pg_stat_archiver")" = t ] && return 0
        sleep 0.5
    done
    echo "bench: WAL $target was not archived in 5 minutes:" >&2
    psql -c "SELECT * FROM pg_stat_archiver" >&2
    return 1
}
data_bytes() { du -sb --exclude=pg_wal "$data" | cut -f1; }
warm_cache() { find "$data" -type f -print0 | xargs -0 cat >/dev/null 2>&1 || true; }
quiesce() { sync; psql -c "CHECKPOINT"; sync; }

# ---------------------------------------------------------------------------------------------
# Recording.
#   case_def NAME DESCRIPTION CODEC OP PROCESS_MAX DATA_BYTES   (OP: compress, decompress, hash, -)
case_def() {
    python3 - "$@" >>"$cases" <<'PY'
import json, sys
name, desc, codec, op, pm, data = sys.argv[1:7]
print(json.dumps({"name": name, "description": desc, "codec": None if codec == "-" else codec,
                  "op": None if op == "-" else op, "process_max": int(pm),
                  "data_bytes": int(data) if data.isdigit() else None}))
PY
}
want_case() { [[ $1 =~ $case_filter ]]; }

# record CASE TOOL ROUND STATUS [REPO_BYTES] [NOTE]  (merges $work/run.json when STATUS is ok/failed)
record() {
    python3 - "$@" "$work/run.json" >>"$runs" <<'PY'
import json, os, sys
path = sys.argv[-1]
case, tool, rnd, status, repo, note = (sys.argv[1:-1] + [""] * 6)[:6]
row = {"case": case, "tool": tool, "round": int(rnd), "status": status,
       "repo_bytes": int(repo) if repo.isdigit() else None, "note": note or None}
if status in ("ok", "failed") and os.path.exists(path):
    with open(path) as f:
        row.update(json.load(f))
print(json.dumps(row))
PY
    rm -f "$work/run.json"
}

# measure CASE TOOL ROUND -- CMD...: runs CMD timed as postgres; returns its exit status.
measure() {
    local c=$1 t=$2 r=$3
    shift 4
    local log="$work/logs/$c.$t.$r.log"
    rm -f "$work/run.json"
    if "${lib[@]}" measure --out "$work/run.json" "${measure_user[@]}" -- "$@" >"$log" 2>&1; then
        return 0
    fi
    note "$t FAILED in $c round $r (log $log):"
    tail -n 5 "$log" | sed 's/^/      /'
    return 1
}
show_last() {
    python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])][-1]; print("   %-10s round %d: %s%s" % (r["tool"], r["round"], r["status"], "" if r.get("wall") is None else "  %.2f s wall, %.2f s CPU, %.0f MiB RSS" % (r["wall"], r["cpu"], r["peak_rss"]/1048576)))' "$runs"
}

# ---------------------------------------------------------------------------------------------
# What pgkeep supports in this build (cases it lacks are reported as unsupported, not failed).
pgkeep_incr=n
pgkeep_delta=n
"$work/bin/pgkeep" help backup 2>/dev/null | grep -q -- '--type=.*incr' && pgkeep_incr=y
"$work/bin/pgkeep" help restore 2>/dev/null | grep -q -- '--\(\[no-\]\)\?delta' && pgkeep_delta=y

step "cluster: initdb --data-checksums, port $port, work directory $work"
note "BENCH_SCALE=$scale: pgbench -s $pgbench_scale, $mixed_rows rows of mixed data, $wal_segments WAL segments; BENCH_ROUNDS=$rounds"
note "pgkeep $("$work/bin/pgkeep" version | awk '{print $2}') (incr: $pgkeep_incr, delta restore: $pgkeep_delta); $("$pgbackrest_bin" version)"
run "$pg_bin/initdb" --data-checksums -A trust -U postgres -D "$data" >/dev/null
cat >>"$data/postgresql.conf" <<CONF
port = $port
unix_socket_directories = '$work/sock'
listen_addresses = ''
wal_level = replica
archive_mode = on
archive_command = '$archive_off'
max_wal_size = 8GB
checkpoint_timeout = 30min
CONF
run "$pg_bin/pg_ctl" -D "$data" -l "$work/postgres.log" -w start >/dev/null

step "dataset P: pgbench -i -s $pgbench_scale"
run "$pg_bin/pgbench" -i -s "$pgbench_scale" -q -h "$work/sock" -p "$port" postgres 2>&1 | tail -n 1 | sed 's/^/   /'
psql -c "VACUUM ANALYZE"

# Real WAL for archive-push: the data load's segments, topped up by bulk inserts of md5 text.
while [ "$(ls "$work/walpool" | wc -l)" -lt "$wal_segments" ]; do
    psql -c "CREATE TABLE bench_walgen AS SELECT g AS id, md5(g::text) AS note, (random() * 1e9)::int AS n
             FROM generate_series(1, 500000) g"
    psql -c "DROP TABLE bench_walgen"
    sleep 0.5
done
wait_archived
note "WAL sample: $(ls "$work/walpool" | wc -l) segments of $(du -sh "$work/walpool" | cut -f1)"

step "stanza-create (both), archive_command = both tools' archive-push"
run "${pgk[@]}" stanza-create
run "${pgbr[@]}" stanza-create
set_archive_command "$archive_on"
wait_archived
note "archive_command = '$archive_on'"

# ---------------------------------------------------------------------------------------------
# Full backups. keep[case-tool] holds the label of a backup kept for the restore cases.
declare -A keep=()
labels() { ls "$1/backup/$stanza" 2>/dev/null | grep -E '^[0-9]{8}-[0-9]{6}F(_[0-9]{8}-[0-9]{6}[DI])?$' | sort || true; }
new_label() { comm -13 <(echo "$1") <(labels "$2") | tail -n 1; }

# backup_run CASE TOOL ROUND KEEP(y/n) ARGS...
backup_run() {
    local c=$1 t=$2 r=$3 k=$4
    shift 4
    local repo=$work/repo-$t before label status=ok bytes=""
    before=$(labels "$repo")
    quiesce
    if [ "$t" = pgkeep ]; then
        measure "$c" "$t" "$r" -- "${pgk[@]}" backup --start-fast "$@" || status=failed
    else
        measure "$c" "$t" "$r" -- "${pgbr[@]}" backup "$@" || status=failed
    fi
    label=$(new_label "$before" "$repo")
    if [ "$status" = ok ] && [ -n "$label" ]; then
        bytes=$(du -sb "$repo/backup/$stanza/$label" | cut -f1)
    fi
    record "$c" "$t" "$r" "$status" "$bytes" "$label"
    show_last
    if [ -n "$label" ]; then
        if [ "$k" = y ]; then keep[$c-$t]=$label; else rm -rf "${repo:?}/backup/$stanza/$label"; fi
    fi
}

full_cases() {  # DATASET
    local ds=$1 bytes
    bytes=$(data_bytes)
    warm_cache
    # lz4 pm2 last: its backups are the newest, the prior of the incremental case.
    for spec in zst:1 lz4:1 zst:2 lz4:2; do
        local codec=${spec%:*} pm=${spec#*:}
        local c="full-$ds-$codec-pm$pm"
        # the restore and incremental cases need the pm2 full backups of M
        want_case "$c" || { [ "$ds" = M ] && [ "$pm" = 2 ] && { want_case "restore-M-$codec-pm2" ||
            want_case "restore-delta-M-$codec-pm2" || { [ "$codec" = lz4 ] && want_case incr-M-lz4-pm2; }; }; } || continue
        case_def "$c" "full backup of $ds, $codec level 1, process-max $pm" "$codec" compress "$pm" "$bytes"
        step "$c"
        for r in $(seq 1 "$rounds"); do
            local k=n
            [ "$ds" = M ] && [ "$pm" = 2 ] && [ "$r" = "$rounds" ] && k=y
            for t in pgkeep pgbackrest; do
                backup_run "$c" "$t" "$r" "$k" --type=full --compress-type="$codec" --compress-level=1 --process-max="$pm"
            done
        done
    done
}

full_cases P

step "dataset M: P + $mixed_rows rows of md5 text, random integers and timestamps"
set_archive_command "$archive_off"
psql -c "CREATE TABLE bench_mixed (id bigint, note text, n1 int, n2 int, ts timestamptz)"
psql -c "INSERT INTO bench_mixed SELECT g, md5(g::text), (random() * 2e9 - 1e9)::int, (random() * 1e6)::int,
         timestamptz '2020-01-01' + random() * interval '1500 days' FROM generate_series(1, $mixed_rows) g"
psql -c "VACUUM ANALYZE bench_mixed"
wait_archived
set_archive_command "$archive_on"
wait_archived
note "bench_mixed: $(psql_value "SELECT pg_size_pretty(pg_total_relation_size('bench_mixed'))"), cluster $(psql_value "SELECT pg_size_pretty(sum(pg_database_size(oid))) FROM pg_database")"
M_bytes=$(data_bytes)

# ---------------------------------------------------------------------------------------------
step "single-core reference speeds on a $((sample_bytes >> 20)) MiB sample of dataset M"
quiesce  # the relation files hold the loaded rows only after a checkpoint
warm_cache
"${lib[@]}" sample --out "$work/sample" --bytes "$sample_bytes" "$data/base" "$data/global" >/dev/null
chmod 644 "$work/sample"
lz4 -1 -q -c "$work/sample" >"$work/sample.lz4"
zstd -1 -T1 -q -c "$work/sample" >"$work/sample.zst"
speed() {  # NAME CMD...: best of 3 (CPU seconds), as bytes of the sample per CPU second
    local name=$1 best=""
    shift
    for _ in 1 2 3; do
        "${lib[@]}" measure --out "$work/speed.json" -- "$@" >/dev/null
        local s
        s=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["cpu"])' "$work/speed.json")
        best=$(calc "min(${best:-$s}, $s)")
    done
    local bps
    bps=$(calc "round($(stat -c %s "$work/sample") / max($best, 1e-6))")
    printf '"%s": %s\n' "$name" "$bps" >>"$work/speeds"
    note "$(printf '%-16s %6.0f MB/s' "$name" "$(calc "$bps / 1e6")")"
}
: >"$work/speeds"
speed sha256 openssl dgst -sha256 "$work/sample"
speed lz4_compress lz4 -1 -q -c "$work/sample"
speed zst_compress zstd -1 -T1 -q -c "$work/sample"
speed lz4_decompress lz4 -d -q -c "$work/sample.lz4"
speed zst_decompress zstd -d -T1 -q -c "$work/sample.zst"
note "sample compresses to $(calc "round(100 * $(stat -c %s "$work/sample.lz4") / $(stat -c %s "$work/sample"))")% (lz4 -1), $(calc "round(100 * $(stat -c %s "$work/sample.zst") / $(stat -c %s "$work/sample"))")% (zstd -1)"
rm -f "$work/sample" "$work/sample.lz4" "$work/sample.zst"

full_cases M

# ---------------------------------------------------------------------------------------------
# Restores of the kept M backups: into an empty directory, then --delta onto that unchanged copy.
restore_dir=$work/restore
fresh_restore_dir() { rm -rf "$restore_dir"; run mkdir -m 700 "$restore_dir"; sync; }
for codec in lz4 zst; do
    c="restore-M-$codec-pm2"
    cd_="restore-delta-M-$codec-pm2"
    want_case "$c" || want_case "$cd_" || continue
    [ -n "${keep[full-M-$codec-pm2-pgkeep]:-}${keep[full-M-$codec-pm2-pgbackrest]:-}" ] || continue
    case_def "$c" "restore of the full $codec backup of M into an empty directory, process-max 2" "$codec" decompress 2 "$M_bytes"
    case_def "$cd_" "restore --delta of the same backup onto the unchanged restored copy, process-max 2" "-" hash 2 "$M_bytes"
    step "$c, $cd_"
    for r in $(seq 1 "$rounds"); do
        for t in pgkeep pgbackrest; do
            label=${keep[full-M-$codec-pm2-$t]:-}
            if [ -z "$label" ]; then
                record "$c" "$t" "$r" "failed" "" "no backup to restore"
                record "$cd_" "$t" "$r" "failed" "" "no backup to restore"
                continue
            fi
            if [ "$t" = pgkeep ]; then cmd=("${pgk[@]}"); else cmd=("${pgbr[@]}"); fi
            fresh_restore_dir
            status=ok
            measure "$c" "$t" "$r" -- "${cmd[@]}" restore --set="$label" --pg1-path="$restore_dir" --process-max=2 || status=failed
            record "$c" "$t" "$r" "$status" "" "$(du -sb "$restore_dir" | cut -f1) bytes restored"
            show_last
            if [ "$t" = pgkeep ] && [ "$pgkeep_delta" = n ]; then
                record "$cd_" "$t" "$r" unsupported "" "pgkeep restore has no --delta yet"
            elif [ "$status" = ok ]; then
                sync
                status=ok
                measure "$cd_" "$t" "$r" -- "${cmd[@]}" restore --delta --set="$label" --pg1-path="$restore_dir" --process-max=2 || status=failed
                record "$cd_" "$t" "$r" "$status"
            else
                record "$cd_" "$t" "$r" failed "" "the restore before it failed"
            fi
            show_last
        done
    done
    fresh_restore_dir
done

# ---------------------------------------------------------------------------------------------
# Incremental backups after a workload that changes ~1% of the pages of the two large tables.
c=incr-M-lz4-pm2
if want_case "$c"; then
    case_def "$c" "incremental backup of M after updating ~1% of the pages of the large tables, lz4, process-max 2" "-" - 2 ""
    step "$c"
    accounts=$((pgbench_scale * 100000))
    for r in $(seq 1 "$rounds"); do
        a0=$(( (r - 1) * accounts / 50 ))
        m0=$(( (r - 1) * mixed_rows / 50 ))
        psql -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid > $a0 AND aid <= $a0 + $accounts / 100"
        psql -c "UPDATE bench_mixed SET n1 = n1 + 1 WHERE id > $m0 AND id <= $m0 + $mixed_rows / 100"
        for t in pgkeep pgbackrest; do
            if [ "$t" = pgkeep ] && [ "$pgkeep_incr" = n ]; then
                record "$c" "$t" "$r" unsupported "" "pgkeep backup has no --type=incr yet"
                show_last
                continue
            fi
            # kept: each round's incremental is the prior of the next one
            backup_run "$c" "$t" "$r" y --type=incr --compress-type=lz4 --compress-level=1 --process-max=2
        done
    done
fi

# ---------------------------------------------------------------------------------------------
# archive-push of the WAL sample, one process per segment (as PostgreSQL calls it), into a fresh
# archive per round and tool; then archive-get of every segment, compared with the original.
segments=$(ls "$work/walpool")
seg_bytes=$(du -sb "$work/walpool" | cut -f1)
cp_="archive-push-lz4"
cg_="archive-get-lz4"
if want_case "$cp_" || want_case "$cg_"; then
    case_def "$cp_" "archive-push of $wal_segments WAL segments, one call each, lz4" lz4 compress 1 "$seg_bytes"
    case_def "$cg_" "archive-get of the same $wal_segments segments, one call each" lz4 decompress 1 "$seg_bytes"
    step "$cp_, $cg_"
    cat "$work"/walpool/* >/dev/null
    for r in $(seq 1 "$rounds"); do
        for t in pgkeep pgbackrest; do
            repo=$work/archive-$t-$r
            run mkdir "$repo"
            tool=$(tool_cmd "$t")
            run $tool --repo1-path="$repo" stanza-create >/dev/null
            sync
            status=ok
            measure "$cp_" "$t" "$r" -- bash -c "cd $data && for f in $work/walpool/*; do $tool --repo1-path=$repo archive-push \$f || exit; done" || status=failed
            record "$cp_" "$t" "$r" "$status" "$(du -sb "$repo/archive" | cut -f1)"
            show_last
            rm -rf "$work/walget"
            run mkdir "$work/walget"
            sync
            status=ok
            measure "$cg_" "$t" "$r" -- bash -c "cd $data && for f in $(echo $segments); do $tool --repo1-path=$repo archive-get \$f $work/walget/\$f || exit; done" || status=failed
            if [ "$status" = ok ] && ! diff -rq "$work/walpool" "$work/walget" >/dev/null; then
                status=failed
                note "$t archive-get round $r: the files differ from the originals"
            fi
            record "$cg_" "$t" "$r" "$status"
            show_last
            rm -rf "$repo" "$work/walget"
        done
    done
fi

# ---------------------------------------------------------------------------------------------
step "results"
mkdir -p "$results_dir"
python3 - "$work/meta.json" "$cases" "$work/speeds" <<PY
import json, os, platform, subprocess, sys, datetime
out, cases_path, speeds_path = sys.argv[1:4]
cpu = "?"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip(); break
mem = 0
for line in open("/proc/meminfo"):
    if line.startswith("MemTotal"):
        mem = int(line.split()[1]) * 1024
speeds = {}
if os.path.exists(speeds_path) and os.path.getsize(speeds_path):
    speeds = json.loads("{" + ",".join(open(speeds_path).read().split("\n")[:-1]) + "}")
meta = {
    "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    "machine": {"cpu": cpu, "cores": os.cpu_count(), "memory_bytes": mem, "kernel": platform.release(),
                "hostname": platform.node()},
    "scale": float("$scale"), "rounds": int("$rounds"),
    "pgbench_scale": int("$pgbench_scale"), "mixed_rows": int("$mixed_rows"), "wal_segments": int("$wal_segments"),
    "pgkeep_version": "$("$work/bin/pgkeep" version)", "pgbackrest_version": "$("$pgbackrest_bin" version)",
    "postgresql_version": "$("$pg_bin/postgres" --version)",
    "pgkeep_supports": {"incr": "$pgkeep_incr" == "y", "delta": "$pgkeep_delta" == "y"},
    "speeds": speeds,
    "method": {
        "wall": "monotonic clock around the command",
        "cpu": "user+sys seconds of the command and all descendants it waited for (wait4 rusage)",
        "peak_rss": "max over 20 ms samples of the summed RSS of the process tree (/proc/<pid>/statm), "
                    "at least the largest single-process ru_maxrss",
        "repo_bytes": "du -sb of the backup's directory (backups) or of the archive directory (archive-push)",
        "compute_limit": "min(process_max, cores) / (1/codec speed + 1/sha256 speed), single-core speeds of "
                         "lz4 -1 / zstd -1 -T1 / openssl dgst -sha256 on a sample of dataset M; "
                         "fraction = data bytes / median wall / limit",
    },
    "cases": [json.loads(l) for l in open(cases_path) if l.strip()],
}
json.dump(meta, open(out, "w"), indent=2)
PY
"${lib[@]}" report --runs "$runs" --meta "$work/meta.json" --out "$results_dir/latest.json" | tee "$results_dir/latest.txt"
