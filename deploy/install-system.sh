#!/usr/bin/env bash
# Install aqnet's system components on Debian, idempotently, as root:
# PostgreSQL 15 (+ server headers), TimescaleDB (Apache-2 edition), Mosquitto and its clients.
#
# Every step checks first and skips what is already there, so a second run takes seconds.
# Installing packages starts no service: aqnet starts its own processes (aqnet/localstack/).
#
# TimescaleDB: Debian 12 ships no binary package. When the machine's apt offers one
# (postgresql-15-timescaledb or timescaledb-2-postgresql-15) it is installed; otherwise the
# Debian source package of the next release (trixie) is fetched with a PRIVATE apt state
# (its own sources list, lists and cache under $AQNET_BUILD_DIR), so /etc/apt is never touched,
# and built against PostgreSQL 15 with the Apache-only options. The archive URI is read at run
# time from this machine's own apt configuration; no host name is written here.
set -euo pipefail

PG_MAJOR=${PG_MAJOR:-15}
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
TS_SOURCE_SUITE=${TS_SOURCE_SUITE:-trixie}
AQNET_BUILD_DIR=${AQNET_BUILD_DIR:-/var/cache/aqnet-build}

log() { printf 'install-system: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then exec sudo -E bash "$0" "$@"; fi
  log "must run as root (or with sudo available) to install system packages"; exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_update_once() {
  if [ "$apt_updated" -eq 0 ]; then log "apt-get update"; apt-get update -qq; apt_updated=1; fi
}
missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || printf '%s\n' "$p"
  done
}
ensure_packages() {
  local need
  need=$(missing_packages "$@")
  [ -z "$need" ] && return 0
  apt_update_once
  log "installing: $(echo $need)"
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $need >/dev/null
}

ensure_packages "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" postgresql-client-$PG_MAJOR \
  mosquitto mosquitto-clients ca-certificates
# For the Modbus tests: socat makes the pseudo-terminal pairs RTU runs over; mbpoll is a Modbus client that is
# not ours, reading the simulated stations to cross-check aqnet's decoding.
ensure_packages socat mbpoll
# The MQTT TLS tests make their CA and certificates with the openssl CLI.
ensure_packages openssl
# Alert delivery tests post to a real Alertmanager; the deployment tests check Prometheus' and Alertmanager's
# configuration with promtool and amtool. Installing them starts nothing: the tests run their own instances.
ensure_packages prometheus-alertmanager prometheus
# The web console's browser tests drive Debian's headless Chromium through its chromedriver (Selenium is pointed
# at /usr/bin/chromedriver, so it never downloads a driver or a browser of its own).
ensure_packages chromium chromium-driver

# The project's virtual environment needs venv and ensurepip (Debian splits them out of python3).
python3 -c 'import venv, ensurepip' 2>/dev/null || ensure_packages python3-venv python3-pip

ts_installed() { [ -f "/usr/share/postgresql/$PG_MAJOR/extension/timescaledb.control" ]; }

install_timescaledb_binary() {
  local name cand
  for name in "postgresql-$PG_MAJOR-timescaledb" "timescaledb-2-postgresql-$PG_MAJOR"; do
    cand=$(apt-cache policy "$name" 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -n "$cand" ] && [ "$cand" != "(none)" ]; then ensure_packages "$name"; return 0; fi
  done
  return 1
}

build_timescaledb_from_source() {
  ensure_packages cmake make gcc dpkg-dev libssl-dev libkrb5-dev debian-archive-keyring
  . /etc/os-release
  local site
  # The Debian archive this machine already uses for its own release (not the security one).
  site=$(apt-get indextargets --format '$(SITE)' 'Identifier: Packages' "Codename: $VERSION_CODENAME" | head -n 1)
  if [ -z "$site" ]; then
    log "cannot find this machine's Debian archive in its apt configuration (apt-get indextargets for $VERSION_CODENAME)"; exit 1
  fi
  local state=$AQNET_BUILD_DIR/apt
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$state/parts" "$state/prefs"
  printf 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' "$site" "$TS_SOURCE_SUITE" >"$state/sources.list"
  local aptopts=(-o "Dir::Etc::SourceList=$state/sources.list" -o "Dir::Etc::SourceParts=$state/parts"
    -o "Dir::Etc::PreferencesParts=$state/prefs" -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache"
    -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "APT::Sandbox::User=root")
  log "fetching the timescaledb source package from $TS_SOURCE_SUITE (private apt state in $state)"
  apt-get "${aptopts[@]}" -qq update
  local src=$AQNET_BUILD_DIR/src
  rm -rf "$src"; mkdir -p "$src"
  (cd "$src" && apt-get "${aptopts[@]}" -qq source timescaledb >/dev/null)
  local dir
  dir=$(find "$src" -mindepth 1 -maxdepth 1 -type d -name 'timescaledb-*' | head -n 1)
  [ -n "$dir" ] || { log "apt-get source timescaledb unpacked nothing in $src"; exit 1; }
  log "building $(basename "$dir") against PostgreSQL $PG_MAJOR (Apache-2 edition)"
  mkdir -p "$dir/build"
  (cd "$dir/build" &&
    cmake .. -DAPACHE_ONLY=ON -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
      -DPG_CONFIG="$PG_CONFIG" >/dev/null &&
    make -j"$(nproc)" >/dev/null && make install >/dev/null) >"$AQNET_BUILD_DIR/build.log" 2>&1 || { log "build failed; see $AQNET_BUILD_DIR/build.log"; tail -n 30 "$AQNET_BUILD_DIR/build.log" >&2; exit 1; }
}

if ts_installed; then
  log "timescaledb already installed for PostgreSQL $PG_MAJOR"
elif install_timescaledb_binary; then
  log "timescaledb installed from the distribution package"
else
  build_timescaledb_from_source
fi
ts_installed || { log "timescaledb is still not installed for PostgreSQL $PG_MAJOR"; exit 1; }
log "system components ready: PostgreSQL $PG_MAJOR + TimescaleDB $(grep default_version "/usr/share/postgresql/$PG_MAJOR/extension/timescaledb.control" | cut -d"'" -f2), $(mosquitto -h 2>/dev/null | head -n 1 || true)"
