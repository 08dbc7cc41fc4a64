#!/usr/bin/env bash
# make demo: pgkeep's main job on a throwaway local PostgreSQL 15 cluster.
#   stanza-create -> archiving -> pgbench data -> full backup -> more writes -> restore into a new
#   directory -> start it (recovery replays the archived WAL) -> the rows are back -> info.
# Everything lives in one temporary directory, removed at the end (PGKEEP_DEMO_KEEP=1 keeps it).
set -euo pipefail
binary=${1:?usage: demo.sh <pgkeep binary>}
pg_bin=${PG_BIN:-/usr/lib/postgresql/15/bin}

demo=$(mktemp -d /tmp/pgkeep-demo.XXXXXX)
chmod 755 "$demo"
port=$((56000 + RANDOM % 1000))
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$demo"
    as_pg=(runuser -u postgres --)
fi
run() { "${as_pg[@]}" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
    for d in data restored; do
        [ -f "$demo/$d/postmaster.pid" ] && run "$pg_bin/pg_ctl" -D "$demo/$d" -m fast -w stop >/dev/null 2>&1 || true
    done
    if [ "${PGKEEP_DEMO_KEEP:-0}" = 1 ]; then echo "kept $demo"; else rm -rf "$demo"; fi
}
trap cleanup EXIT

# PostgreSQL runs archive_command as its own user: the binary must be where it can execute it.
run mkdir -p "$demo/bin" "$demo/sock" "$demo/repo"
cp "$binary" "$demo/bin/pgkeep"
chmod 755 "$demo/bin/pgkeep"
pgkeep=("$demo/bin/pgkeep" --stanza=demo --repo1-path="$demo/repo" --log-path="$demo/log" --log-level-console=info)
psql() { run "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$demo/sock" -p "$1" -d postgres "${@:2}"; }

step "initdb --data-checksums, archive_command = pgkeep archive-push"
run "$pg_bin/initdb" --data-checksums -A trust -U postgres -D "$demo/data" >/dev/null
cat >>"$demo/data/postgresql.conf" <<CONF
port = $port
unix_socket_directories = '$demo/sock'
listen_addresses = ''
wal_level = replica
archive_mode = on
archive_command = '$demo/bin/pgkeep --stanza=demo --repo1-path=$demo/repo --log-path=$demo/log archive-push %p'
CONF
run "$pg_bin/pg_ctl" -D "$demo/data" -l "$demo/data.log" -w start >/dev/null

step "pgkeep stanza-create"
run "${pgkeep[@]}" --pg1-path="$demo/data" stanza-create

step "pgbench -i -s 5 (about 75 MB)"
run "$pg_bin/pgbench" -i -s 5 -q -h "$demo/sock" -p "$port" postgres 2>&1 | tail -1

step "pgkeep backup --type=full --process-max=2"
run "${pgkeep[@]}" --pg1-path="$demo/data" --pg1-socket-path="$demo/sock" --pg1-port="$port" \
    backup --type=full --start-fast --process-max=2

step "writes after the backup, then pg_switch_wal() so they are archived"
psql "$port" -c "CREATE TABLE after_backup AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, 5000) g"
psql "$port" -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 1000"
psql "$port" -At -c "SELECT 'rows written after the backup: ' || count(*) FROM after_backup"
psql "$port" -At -c "SELECT pg_switch_wal()" >/dev/null
for _ in $(seq 1 50); do
    [ "$(psql "$port" -At -c "SELECT last_archived_wal >= pg_walfile_name(pg_current_wal_lsn() - 1) FROM pg_stat_archiver")" = t ] && break
    sleep 0.2
done

step "pgkeep restore into a new directory"
run "${pgkeep[@]}" --pg1-path="$demo/restored" restore --process-max=2
run tail -n 2 "$demo/restored/postgresql.auto.conf"

step "start the restored cluster: recovery replays the archived WAL"
restored_port=$((port + 1))
printf "port = %s\narchive_mode = off\n" "$restored_port" | run tee -a "$demo/restored/postgresql.auto.conf" >/dev/null
run "$pg_bin/pg_ctl" -D "$demo/restored" -l "$demo/restored.log" -w -t 120 start >/dev/null
for _ in $(seq 1 100); do
    [ "$(psql "$restored_port" -At -c "SELECT pg_is_in_recovery()")" = f ] && break
    sleep 0.2
done
grep -E "restored log file|consistent recovery|archive recovery complete" "$demo/restored.log" | sed 's/^/    /'

step "the rows came back"
psql "$restored_port" -At -c "SELECT 'after_backup rows in the restored cluster: ' || count(*) FROM after_backup"
psql "$restored_port" -At -c "SELECT 'accounts updated after the backup: ' || count(*) FROM pgbench_accounts WHERE aid <= 1000 AND abalance = 1"
src=$(psql "$port" -At -c "SELECT md5(string_agg(id || note, ',' ORDER BY id)) FROM after_backup")
dst=$(psql "$restored_port" -At -c "SELECT md5(string_agg(id || note, ',' ORDER BY id)) FROM after_backup")
[ "$src" = "$dst" ] && echo "source and restored contents match ($src)" || { echo "MISMATCH: $src vs $dst"; exit 1; }

step "pgkeep info"
run "$demo/bin/pgkeep" --stanza=demo --repo1-path="$demo/repo" --log-path="$demo/log" info
