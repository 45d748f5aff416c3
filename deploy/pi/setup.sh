#!/usr/bin/env bash
# Set up a lerec body-worn recorder on Raspberry Pi OS (Bookworm), as root:
#
#   sudo ./deploy/pi/setup.sh [--device-id rec-001] [--hub-host hub.example.lan] [--keys DIR]
#
# Installs the system packages (picamera2 and lgpio come from apt), creates the 'lerec' user,
# a virtualenv in /opt/lerec/venv with --system-site-packages (so picamera2 is visible),
# installs lerec with the [device] extra, writes /etc/lerec/recorder.toml from the template
# (never overwrites an existing one), copies the recorder's keys if given, and enables the
# lerec-recorder systemd unit. Safe to run again.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PREFIX=/opt/lerec
ETC=/etc/lerec
DEVICE_ID=""
HUB_HOST=""
KEYS=""

usage() {
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --device-id) DEVICE_ID="$2"; shift 2 ;;
        --hub-host) HUB_HOST="$2"; shift 2 ;;
        --keys) KEYS="$2"; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "unknown option: $1" >&2; usage 2 ;;
    esac
done

if [ "$(id -u)" -ne 0 ]; then
    echo "run as root (sudo $0)" >&2
    exit 1
fi

echo "== system packages"
apt-get update
apt-get install -y --no-install-recommends \
    python3-venv python3-pip python3-picamera2 python3-lgpio \
    portaudio19-dev python3-dev build-essential libcap-dev alsa-utils

echo "== user and folders"
if ! id lerec >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/lerec --shell /usr/sbin/nologin lerec
fi
for group in video audio gpio; do
    if getent group "$group" >/dev/null; then
        usermod -a -G "$group" lerec
    fi
done
install -d -m 0700 -o lerec -g lerec /var/lib/lerec
install -d -m 0750 -o root -g lerec "$ETC" "$ETC/keys"

echo "== virtualenv in $PREFIX/venv"
install -d -m 0755 "$PREFIX"
if [ ! -x "$PREFIX/venv/bin/python" ]; then
    python3 -m venv --system-site-packages "$PREFIX/venv"
fi
"$PREFIX/venv/bin/pip" install --upgrade pip
"$PREFIX/venv/bin/pip" install "${SRC}[device]"
ln -sfn "$SRC" "$PREFIX/src"

echo "== configuration"
if [ -n "$KEYS" ]; then
    for f in ca.crt client.crt client.key signing.key hub-signing.pub hub-box.pub; do
        install -m 0640 -o root -g lerec "$KEYS/$f" "$ETC/keys/$f"
    done
fi
if [ ! -e "$ETC/recorder.toml" ]; then
    install -m 0640 -o root -g lerec "$SRC/deploy/pi/recorder.toml.example" "$ETC/recorder.toml"
    if [ -n "$DEVICE_ID" ]; then
        sed -i "s/^device_id = .*/device_id = \"$DEVICE_ID\"/" "$ETC/recorder.toml"
    fi
    if [ -n "$HUB_HOST" ]; then
        sed -i "s/^host = .*/host = \"$HUB_HOST\"/" "$ETC/recorder.toml"
    fi
    echo "wrote $ETC/recorder.toml: check device_id, hub host and keys"
else
    echo "$ETC/recorder.toml exists; left as it is"
fi
if ! "$PREFIX/venv/bin/python" - "$ETC/recorder.toml" <<'PY'
import sys
from lerec.device.settings import DeviceSettings
DeviceSettings.load(sys.argv[1])
PY
then
    echo "the configuration does not load; fix $ETC/recorder.toml" >&2
    exit 1
fi

echo "== systemd unit"
install -m 0644 "$SRC/deploy/systemd/lerec-recorder.service" /etc/systemd/system/
systemctl daemon-reload
systemctl enable lerec-recorder.service
if [ -e "$ETC/keys/client.key" ]; then
    systemctl restart lerec-recorder.service
    echo "lerec-recorder started: journalctl -u lerec-recorder -f"
else
    echo "keys missing in $ETC/keys: copy them (or rerun with --keys DIR), then"
    echo "    systemctl start lerec-recorder"
fi
