#!/usr/bin/env bash
# Installs what pgkeep needs on Debian 12: the C libraries' -dev packages, pkg-config and
# PostgreSQL 15 (server, client, contrib for pg_amcheck), GNU time (peak RSS in the integration
# tests) and dosfstools (mkfs.vfat: a file system with 2-second mtimes, CoarseTimestampTests). Idempotent: only missing packages are installed, and apt is not touched at all when
# everything is present.
set -euo pipefail
packages=(pkg-config libzstd-dev liblz4-dev libssl-dev libpq-dev libxxhash-dev postgresql-15 postgresql-client-15 time dosfstools)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "deps: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
# Debian's postgresql-common would create and start a 'main' cluster on install: we only want the
# binaries, our tests create their own clusters.
if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    "${sudo_cmd[@]}" mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" | "${sudo_cmd[@]}" tee /etc/postgresql-common/createcluster.conf >/dev/null
fi
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
