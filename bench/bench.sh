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
#   BENCH_SMALL_TABLES    tables of dataset S, one small file each (default 50000 x scale, at least 1000)
#   BENCH_CASES           extended regex: only cases whose name matches run (e.g. 'full|restore')
#   BENCH_TMPDIR=/var/tmp where the work directory goes (cluster, repositories, restores)
#   BENCH_KEEP=1          keep the work directory
#   BENCH_RESULTS         where latest.json/latest.txt go (default bench/results)
#   BENCH_BASELINE        another pgkeep binary (an earlier commit's release build): it runs as a
#                         third tool, pgkeep-base, before pgkeep in odd rounds and after it in even
#                         ones, with its own repository; the report adds pgkeep/pgkeep-base ratios
#
# Everything (cluster, repositories) lives in one work directory removed at the end; the cluster
# is stopped by a trap. As root, PostgreSQL, pgkeep and pgBackRest run as the postgres OS user.
# Each timed command runs under `benchlib.py measure`, which records wall time, CPU (user+sys of
# the whole process tree, from wait4) and peak RSS (sum over the tree, sampled from /proc).
set -euo pipefail
binary=${1:?usage: bench.sh <pgkeep binary>}
baseline=${BENCH_BASELINE:-}
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
small_tables=${BENCH_SMALL_TABLES:-$(calc "max(1000, round(50000 * $scale))")}
latency_calls=50
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
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

# The tools, in the order each round runs them. A baseline pgkeep build (BENCH_BASELINE) goes
# first, so the two pgkeep builds alternate with pgBackRest between them.
tools=(pgkeep pgbackrest)
[ -z "$baseline" ] || tools=(pgkeep-base pgkeep pgbackrest)
run mkdir -p "$work/bin" "$work/sock" "$work/walpool" "$work/logs" "$work/log-pgbackrest"
for t in "${tools[@]}"; do run mkdir -p "$work/lock-$t"; done
cp "$binary" "$work/bin/pgkeep"
chmod 755 "$work/bin/pgkeep"
if [ -n "$baseline" ]; then
    cp "$baseline" "$work/bin/pgkeep-base"
    chmod 755 "$work/bin/pgkeep-base"
fi
port=$((57000 + RANDOM % 1000))
stanza=bench
runs=$work/runs.jsonl
cases=$work/cases.jsonl
: >"$runs"
: >"$cases"

# Every tool gets a config file of its own with the same cluster and separate repositories.
for t in "${tools[@]}"; do
    [ "$t" != pgbackrest ] || continue
    cat >"$work/$t.conf" <<CONF
[global]
repo1-path=$work/repo-$t
lock-path=$work/lock-$t
compress-type=lz4
compress-level=1
log-level-console=warn
log-level-file=off

[$stanza]
pg1-path=$data
pg1-socket-path=$work/sock
pg1-port=$port
CONF
    chmod 644 "$work/$t.conf"
done
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
chmod 644 "$work/pgbackrest.conf"
# set_tool TOOL: cmd = the tool with its config and stanza, bare = the binary alone
set_tool() {
    if [ "$1" = pgbackrest ]; then
        bare=("$pgbackrest_bin")
        cmd=("$pgbackrest_bin" "--config=$work/pgbackrest.conf" "--stanza=$stanza")
    else
        bare=("$work/bin/$1")
        cmd=("$work/bin/$1" "--config=$work/$1.conf" "--stanza=$stanza")
    fi
}
tool_cmd() { set_tool "$1"; echo "${cmd[*]}"; }
is_pgkeep() { [ "$1" != pgbackrest ]; }
# round_tools ROUND: the order round ROUND runs the tools in. With a baseline, even rounds run
# pgkeep before it: a tool that always follows the same other one inherits that one's aftermath
# (a restore into a directory the previous tool's files were just deleted from pays for ext4's
# inode allocation over the freed ones), which would bias the pgkeep/pgkeep-base ratio.
round_tools() { if [ -n "$baseline" ] && (( $1 % 2 == 0 )); then echo pgkeep pgkeep-base pgbackrest; else echo "${tools[*]}"; fi; }
stanza_create_all() { for t in "${tools[@]}"; do set_tool "$t"; run "${cmd[@]}" stanza-create; done; }

psql() { run "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$work/sock" -p "$port" -d postgres "$@"; }
psql_value() { psql -At -c "$1"; }

# archive_command while loading data: keep the first $wal_segments completed segments as the
# archive-push sample, archive nothing else. During the benchmark: both tools' archive-push, so
# both archives are complete (pgkeep's backup waits for its WAL in its own archive).
archive_off="test \$(ls $work/walpool | wc -l) -ge $wal_segments || cp %p $work/walpool/%f"
# The pushes run side by side (PostgreSQL runs archive_command with sh): pushing one after the
# other would hand the tool pushed first its WAL a push earlier, and its backups, which wait for
# their stop segment, a head start (a few percent of a small backup). It succeeds only when all do.
archive_on=""
for i in "${!tools[@]}"; do
    if (( i < ${#tools[@]} - 1 )); then
        archive_on+="$(tool_cmd "${tools[$i]}") archive-push %p & p$i=\$!; "
    else
        archive_on+="$(tool_cmd "${tools[$i]}") archive-push %p; r=\$?; "
    fi
done
for (( i = 0; i < ${#tools[@]} - 1; i++ )); do archive_on+="wait \$p$i || r=1; "; done
archive_on+="exit \$r"
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
#   case_def NAME DESCRIPTION CODEC OP PROCESS_MAX DATA_BYTES [UNIT [ITEMS ITEM_NAME]]
#   (OP: compress, decompress, hash, -; UNIT: s or ms for the times shown; ITEMS: things one run
#   handles, shown as ITEM_NAME per second)
case_def() {
    python3 - "$@" >>"$cases" <<'PY'
import json, sys
name, desc, codec, op, pm, data, unit, items, item_name = (sys.argv[1:] + [""] * 9)[:9]
print(json.dumps({"name": name, "description": desc, "codec": None if codec == "-" else codec,
                  "op": None if op == "-" else op, "process_max": int(pm),
                  "data_bytes": int(data) if data.isdigit() else None, "unit": unit or "s",
                  "items": int(items) if items.isdigit() else None, "item_name": item_name or None}))
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

# copy_phase LOG: adds copy_seconds to run.json, the time between the "backup start" and "backup
# stop" log lines (pgkeep: "backup start LSN", "backup stop LSN"; pgBackRest: "backup start
# archive", "backup stop archive"): listing and copying, without connecting, the checkpoint and
# waiting for WAL, which the wall time includes.
copy_phase() {
    [ -f "$work/run.json" ] || return 0
    python3 - "$1" "$work/run.json" <<'PY'
import datetime, json, re, sys
log, path = sys.argv[1], sys.argv[2]
stamp = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\b.*INFO: backup (start|stop) (LSN|archive)")
times = {}
for line in open(log, errors="replace"):
    m = stamp.match(line)
    if m:
        times.setdefault(m.group(2), datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f"))
with open(path) as f:
    run = json.load(f)
if "start" in times and "stop" in times:
    run["copy_seconds"] = round((times["stop"] - times["start"]).total_seconds(), 3)
with open(path, "w") as f:
    json.dump(run, f)
PY
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
# repeat_measure CASE TOOL ROUND REPEAT-ARGS... -- CMD...: benchlib.py repeat (median of many calls).
repeat_measure() {
    local c=$1 t=$2 r=$3
    shift 3
    local log="$work/logs/$c.$t.$r.log"
    rm -f "$work/run.json"
    if "${lib[@]}" repeat --out "$work/run.json" "${measure_user[@]}" "$@" >"$log" 2>&1; then
        return 0
    fi
    note "$t FAILED in $c round $r (log $log):"
    tail -n 5 "$log" | sed 's/^/      /'
    return 1
}
# wait_background TEXT: until the detached archivers whose command line holds TEXT have exited
wait_background() { "${lib[@]}" waitgone --pattern "$1" --timeout 120 || note "background processes for $1 still running"; }
show_last() {
    python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])][-1]; print("   %-10s round %d: %s%s" % (r["tool"], r["round"], r["status"], "" if r.get("wall") is None else "  %.4f s wall, %.4f s CPU%s" % (r["wall"], r["cpu"], "" if r.get("peak_rss") is None else ", %.0f MiB RSS" % (r["peak_rss"]/1048576))))' "$runs"
}

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
    # The cases before may have pushed data files out of the page cache (each tool's runs write
    # gigabytes); every backup run starts with the whole data directory cached.
    warm_cache
    quiesce
    # info on the console: both tools log "backup start ..." and "backup stop ..." with
    # millisecond timestamps, which bound the copy phase (copy_phase below).
    set_tool "$t"
    if is_pgkeep "$t"; then
        measure "$c" "$t" "$r" -- "${cmd[@]}" backup --start-fast --log-level-console=info "$@" || status=failed
    else
        measure "$c" "$t" "$r" -- "${cmd[@]}" backup --log-level-console=info "$@" || status=failed
    fi
    copy_phase "$work/logs/$c.$t.$r.log"
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

# ---------------------------------------------------------------------------------------------
# What each pgkeep build supports (cases it lacks are reported as unsupported, not failed).
declare -A supports_incr=() supports_delta=()
for t in "${tools[@]}"; do
    is_pgkeep "$t" || continue
    supports_incr[$t]=n
    supports_delta[$t]=n
    # (the help text is captured first: `help | grep -q` under pipefail fails when grep's early
    # exit kills the writer with SIGPIPE, which made a supported case look unsupported)
    help_backup=$("$work/bin/$t" help backup 2>/dev/null || true)
    help_restore=$("$work/bin/$t" help restore 2>/dev/null || true)
    grep -q -- '--type=[a-z|]*incr' <<<"$help_backup" && supports_incr[$t]=y
    grep -q -- '--\(\[no-\]\)\?delta' <<<"$help_restore" && supports_delta[$t]=y
done
pgkeep_incr=${supports_incr[pgkeep]}
pgkeep_delta=${supports_delta[pgkeep]}

step "cluster: initdb --data-checksums, port $port, work directory $work"
note "BENCH_SCALE=$scale: pgbench -s $pgbench_scale, $mixed_rows rows of mixed data, $wal_segments WAL segments, $small_tables small tables; BENCH_ROUNDS=$rounds"
note "load average at the start: $load_start ($(nproc) cores)"
note "pgkeep $("$work/bin/pgkeep" version | awk '{print $2}') (incr: $pgkeep_incr, delta restore: $pgkeep_delta); $("$pgbackrest_bin" version)"
[ -z "$baseline" ] || note "baseline pgkeep-base: $("$work/bin/pgkeep-base" version) from $baseline"
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

# ---------------------------------------------------------------------------------------------
# Fixed cost: a full backup of the cluster just after initdb (~30 MB), both tools archiving; then
# archiving goes back to collecting the WAL sample for the data load.
c=full-empty-lz4-pm1
if want_case "$c"; then
    step "$c: the fixed cost of a backup"
    stanza_create_all
    set_archive_command "$archive_on"
    wait_archived
    case_def "$c" "full backup of the almost empty cluster just after initdb (fixed cost), lz4, process-max 1" "-" - 1 "$(data_bytes)"
    for r in $(seq 1 "$rounds"); do
        for t in $(round_tools "$r"); do
            backup_run "$c" "$t" "$r" n --type=full --compress-type=lz4 --compress-level=1 --process-max=1
        done
    done
    set_archive_command "$archive_off"
fi

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
stanza_create_all
set_archive_command "$archive_on"
wait_archived
note "archive_command = '$archive_on'"

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
            for t in $(round_tools "$r"); do
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
# Both tools restore from a repository that is not in the page cache (see benchlib.py uncache).
cold_repositories() { "${lib[@]}" uncache "${tools[@]/#/$work/repo-}"; }
for codec in lz4 zst; do
    c="restore-M-$codec-pm2"
    cd_="restore-delta-M-$codec-pm2"
    want_case "$c" || want_case "$cd_" || continue
    [ -n "${keep[full-M-$codec-pm2-pgkeep]:-}${keep[full-M-$codec-pm2-pgbackrest]:-}" ] || continue
    case_def "$c" "restore of the full $codec backup of M into an empty directory, process-max 2" "$codec" decompress 2 "$M_bytes"
    case_def "$cd_" "restore --delta of the same backup onto the unchanged restored copy, process-max 2" "-" hash 2 "$M_bytes"
    step "$c, $cd_"
    for r in $(seq 1 "$rounds"); do
        for t in $(round_tools "$r"); do
            label=${keep[full-M-$codec-pm2-$t]:-}
            if [ -z "$label" ]; then
                record "$c" "$t" "$r" "failed" "" "no backup to restore"
                record "$cd_" "$t" "$r" "failed" "" "no backup to restore"
                continue
            fi
            set_tool "$t"
            fresh_restore_dir
            cold_repositories
            status=ok
            measure "$c" "$t" "$r" -- "${cmd[@]}" restore --set="$label" --pg1-path="$restore_dir" --process-max=2 || status=failed
            record "$c" "$t" "$r" "$status" "" "$(du -sb "$restore_dir" | cut -f1) bytes restored"
            show_last
            if is_pgkeep "$t" && [ "${supports_delta[$t]}" = n ]; then
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
        for t in $(round_tools "$r"); do
            if is_pgkeep "$t" && [ "${supports_incr[$t]}" = n ]; then
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
        for t in $(round_tools "$r"); do
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
# Asynchronous archiving, process-max 2. Push: the sample sits in a scratch data directory's
# pg_wal with a .ready file each (a backlog, as after a burst of writes); archive-push is called
# once per segment in order, as PostgreSQL would (in the data directory, with pg_wal/<name>),
# and each .ready becomes .done after its call returns, so the background pusher works ahead.
# Timed: until the last segment is acknowledged. Get: restore_command's pattern, archive-get
# <name> pg_wal/RECOVERYXLOG in a scratch data directory holding the cluster's pg_control, each
# file then moved aside (PostgreSQL would replay it) and compared with the original at the end.
# The detached background processes' CPU is not in the CPU column (they are not waited for).
cpa_="archive-push-async-lz4-pm2"
cga_="archive-get-async-lz4-pm2"
if want_case "$cpa_" || want_case "$cga_"; then
    case_def "$cpa_" "archive-push --archive-async --process-max=2 of $wal_segments ready segments, one call each in order, until all are acknowledged, lz4" \
        lz4 compress 2 "$seg_bytes" s "$wal_segments" segments
    case_def "$cga_" "archive-get --archive-async --process-max=2 --archive-get-queue-max=128MiB of the same segments in order into pg_wal/RECOVERYXLOG" \
        lz4 decompress 2 "$seg_bytes" s "$wal_segments" segments
    step "$cpa_, $cga_"
    cat "$work"/walpool/* >/dev/null
    for r in $(seq 1 "$rounds"); do
        for t in $(round_tools "$r"); do
            repo=$work/archive-$t-$r
            pushdir=$work/pushdir-$t-$r
            getdir=$work/getdir-$t-$r
            tool=$(tool_cmd "$t")
            run mkdir -p "$repo" "$work/spool-push-$t-$r" "$work/spool-get-$t-$r" "$pushdir/pg_wal/archive_status" "$pushdir/global" \
                "$getdir/pg_wal" "$getdir/global"
            run cp "$data/global/pg_control" "$pushdir/global/"
            run cp "$data/global/pg_control" "$getdir/global/"
            # hard links: the tools only read the segments
            run bash -c "for f in $(echo $segments); do ln $work/walpool/\$f $pushdir/pg_wal/\$f || cp $work/walpool/\$f $pushdir/pg_wal/\$f; : >$pushdir/pg_wal/archive_status/\$f.ready; done"
            run $tool --repo1-path="$repo" stanza-create >/dev/null
            async="--repo1-path=$repo --archive-async --process-max=2"
            sync
            status=ok
            measure "$cpa_" "$t" "$r" -- bash -c "cd $pushdir && for f in $(echo $segments); do $tool $async --pg1-path=$pushdir --spool-path=$work/spool-push-$t-$r archive-push pg_wal/\$f || exit; mv pg_wal/archive_status/\$f.ready pg_wal/archive_status/\$f.done; done" || status=failed
            wait_background "$work/spool-push-$t-$r"
            record "$cpa_" "$t" "$r" "$status" "$(du -sb "$repo/archive" | cut -f1)"
            show_last
            rm -rf "$work/walget"
            run mkdir "$work/walget"
            sync
            status=ok
            measure "$cga_" "$t" "$r" -- bash -c "cd $getdir && for f in $(echo $segments); do $tool $async --pg1-path=$getdir --spool-path=$work/spool-get-$t-$r --archive-get-queue-max=128MiB archive-get \$f pg_wal/RECOVERYXLOG || exit; mv pg_wal/RECOVERYXLOG $work/walget/\$f; done" || status=failed
            wait_background "$work/spool-get-$t-$r"
            if [ "$status" = ok ] && ! diff -rq "$work/walpool" "$work/walget" >/dev/null; then
                status=failed
                note "$t async archive-get round $r: the files differ from the originals"
            fi
            record "$cga_" "$t" "$r" "$status"
            show_last
            rm -rf "$repo" "$pushdir" "$getdir" "$work/spool-push-$t-$r" "$work/spool-get-$t-$r" "$work/walget"
        done
    done
fi

# ---------------------------------------------------------------------------------------------
# Latencies, the median of many calls of one process each (no shell in between): archive-push of
# one segment into a fresh archive (lz4, synchronous), archive-push of a segment already archived
# (identical duplicate: both tools succeed), and the start-up of `version`.
cl_="archive-push-latency-lz4"
cdup_="archive-push-duplicate"
cv_="startup-version"
if want_case "$cl_" || want_case "$cdup_" || want_case "$cv_"; then
    n_lat=$(( wal_segments < 20 ? wal_segments : 20 ))
    case_def "$cl_" "one archive-push of a 16 MiB segment into the archive, lz4; median of $n_lat calls per round" - - 1 "" ms
    case_def "$cdup_" "one archive-push of a segment already in the archive (identical); median of $latency_calls calls per round" - - 1 "" ms
    case_def "$cv_" "start-up: \`version\`; median of $latency_calls calls per round" - - 1 "" ms
    step "$cl_, $cdup_, $cv_"
    # Not `ls | head`: head exits after n_lat lines, and ls's next write then dies of SIGPIPE,
    # which pipefail turns into the end of the whole run (seen with 100 segments).
    pool=("$work"/walpool/*)
    printf '%s\n' "${pool[@]:0:$n_lat}" >"$work/latency-items"
    chmod 644 "$work/latency-items"
    first=$(head -n 1 "$work/latency-items")
    cat "$work"/walpool/* >/dev/null
    for r in $(seq 1 "$rounds"); do
        for t in $(round_tools "$r"); do
            repo=$work/archive-$t-$r
            set_tool "$t"
            run mkdir "$repo"
            run "${cmd[@]}" --repo1-path="$repo" stanza-create >/dev/null
            sync
            status=ok
            repeat_measure "$cl_" "$t" "$r" --items "$work/latency-items" -- "${cmd[@]}" --repo1-path="$repo" archive-push {} || status=failed
            record "$cl_" "$t" "$r" "$status"
            show_last
            status=ok
            repeat_measure "$cdup_" "$t" "$r" --times "$latency_calls" -- "${cmd[@]}" --repo1-path="$repo" archive-push "$first" || status=failed
            record "$cdup_" "$t" "$r" "$status"
            show_last
            status=ok
            repeat_measure "$cv_" "$t" "$r" --times "$latency_calls" -- "${bare[@]}" version || status=failed
            record "$cv_" "$t" "$r" "$status"
            show_last
            rm -rf "$repo"
        done
    done
fi

# ---------------------------------------------------------------------------------------------
# Dataset S: many small files. The large tables are dropped and $small_tables tables of one row
# each created (one 8 KiB file each), by two sessions in parallel, committing every 500.
cs_="full-S-lz4-pm2"
crs_="restore-S-lz4-pm2"
if want_case "$cs_" || want_case "$crs_"; then
    step "dataset S: $small_tables tables of one row each (the large tables dropped)"
    set_archive_command "$archive_off"
    psql -c "DROP TABLE IF EXISTS bench_mixed, pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history"
    half=$(( small_tables / 2 ))
    pids=()
    for part in 0 1; do
        lo=$(( part * half + 1 ))
        hi=$(( part == 0 ? half : small_tables ))
        psql -c "SET synchronous_commit = off" -c "DO \$\$ BEGIN
                   FOR i IN $lo..$hi LOOP
                     EXECUTE format('CREATE TABLE bench_s_%s (id int, n int)', i);
                     EXECUTE format('INSERT INTO bench_s_%s VALUES (%s, 1)', i, i);
                     IF i % 500 = 0 THEN COMMIT; END IF;
                   END LOOP; END \$\$" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    psql -c "VACUUM ANALYZE pg_class"
    set_archive_command "$archive_on"
    wait_archived
    quiesce
    S_bytes=$(data_bytes)
    S_files=$(find "$data" -path "$data/pg_wal" -prune -o -type f -print | wc -l)
    note "$(psql_value "SELECT count(*) FROM pg_class WHERE relname LIKE 'bench_s_%'") tables, $S_files files outside pg_wal, $(du -sh --exclude=pg_wal "$data" | cut -f1)"
    case_def "$cs_" "full backup of S ($S_files files), lz4 level 1, process-max 2" lz4 compress 2 "$S_bytes" s "$S_files" files
    case_def "$crs_" "restore of that backup into an empty directory, process-max 2" lz4 decompress 2 "$S_bytes" s "$S_files" files
    step "$cs_, $crs_"
    warm_cache
    for r in $(seq 1 "$rounds"); do
        for t in $(round_tools "$r"); do
            k=n
            [ "$r" = "$rounds" ] && k=y
            backup_run "$cs_" "$t" "$r" "$k" --type=full --compress-type=lz4 --compress-level=1 --process-max=2
        done
    done
    for r in $(seq 1 "$rounds"); do
        for t in $(round_tools "$r"); do
            label=${keep[$cs_-$t]:-}
            if [ -z "$label" ]; then record "$crs_" "$t" "$r" failed "" "no backup to restore"; continue; fi
            set_tool "$t"
            fresh_restore_dir
            cold_repositories
            status=ok
            measure "$crs_" "$t" "$r" -- "${cmd[@]}" restore --set="$label" --pg1-path="$restore_dir" --process-max=2 || status=failed
            record "$crs_" "$t" "$r" "$status" "" "$(find "$restore_dir" -type f | wc -l) files restored"
            show_last
        done
    done
    fresh_restore_dir
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
    "small_tables": int("$small_tables"), "loadavg_start": "$load_start",
    "pgkeep_version": "$("$work/bin/pgkeep" version)", "pgbackrest_version": "$("$pgbackrest_bin" version)",
    "postgresql_version": "$("$pg_bin/postgres" --version)",
    "tools": "${tools[*]}".split(),
    "pgkeep_base_version": "$( [ -z "$baseline" ] || "$work/bin/pgkeep-base" version)" or None,
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
