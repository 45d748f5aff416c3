#!/usr/bin/env bash
# lerec developer entry point. Two commands on a fresh Debian/Ubuntu machine:
#   ./dev.sh up     install what is missing, then run broker + hub + admin + two simulated
#                   recorders (SQLite + a local folder), print where to look, serve until Ctrl-C
#   ./dev.sh test   install what is missing, start the services the tests need, run the suite
#                   (on SQLite, then again on PostgreSQL)
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'dev.sh: %s\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

APT_UPDATED=0
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "need Debian/Ubuntu apt-get to install: ${missing[*]}"
  log "installing system packages: ${missing[*]}"
  if [ "$APT_UPDATED" -eq 0 ]; then as_root apt-get update -q >/dev/null; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

pick_python() {
  for py in python3.13 python3.12 python3.11 python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      echo "$py"; return
    fi
  done
  die "Python >= 3.11 is required"
}

setup() {
  local extra=sim,hub
  # the Chinese font is embedded in each case archive's PDF index (hub/archive/pdfindex.py)
  apt_install mosquitto ca-certificates fonts-noto-cjk
  if [ "${1:-}" = "test" ]; then
    extra=dev
    # browser tests, the PostgreSQL pass, the real PyAudio path (built against PortAudio and
    # fed by a PulseAudio null sink), systemd unit checks, shellcheck for the Pi setup script
    # poppler-utils: pdftotext/pdffonts read the archive's PDF index back in its tests, which
    # also render it with each alternative Chinese font the index knows (fonts-wqy-*)
    apt_install chromium postgresql build-essential python3-dev portaudio19-dev pulseaudio \
      pulseaudio-utils alsa-utils libasound2-plugins systemd shellcheck poppler-utils \
      fonts-wqy-microhei fonts-wqy-zenhei
  fi
  local py; py=$(pick_python)
  if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then apt_install python3-venv; fi
  # mosquitto is run by lerec itself with its own config; the packaged system service is not used.
  local stamp="$VENV/.lerec-installed-$extra"
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV"
    "$py" -m venv "$VENV"
  fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ]; then
    log "installing lerec and its dependencies into $VENV"
    "$VENV/bin/pip" install -q --upgrade pip >/dev/null
    "$VENV/bin/pip" install -q -e ".[$extra]"
    touch "$stamp"
  fi
}

start_postgres() {
  # The suite's second pass uses PostgreSQL on 127.0.0.1:5432 (trust auth for local tests).
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
  local ver; ver=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf "%f\n" 2>/dev/null | sort -V | tail -1)
  [ -n "$ver" ] || die "PostgreSQL is not installed"
  log "starting PostgreSQL $ver"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return 0; sleep 1; done
  die "PostgreSQL did not start on 127.0.0.1:5432"
}

PG_URL=${LEREC_PG_URL:-postgresql://postgres@127.0.0.1:5432/postgres}

case "${1:-}" in
  up)
    setup
    shift
    exec "$VENV/bin/lerec-demo" --data "$ROOT/var/demo" "$@"
    ;;
  test)
    setup test
    shift
    start_postgres
    log "test suite on SQLite (embedded default)"
    env -u LEREC_TEST_DATABASE_URL "$VENV/bin/pytest" "$@"
    # Second pass: everything that touches the database, now on PostgreSQL (the device and
    # protocol tests have none).
    log "database tests on PostgreSQL ($PG_URL)"
    if [ $# -eq 0 ]; then
      set -- tests/hub tests/integration tests/faults tests/security tests/scaleout tests/web
    fi
    LEREC_TEST_DATABASE_URL="$PG_URL" "$VENV/bin/pytest" "$@"
    ;;
  *)
    echo "usage: ./dev.sh up [lerec-demo options] | ./dev.sh test [pytest options]" >&2
    exit 2
    ;;
esac
