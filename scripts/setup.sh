#!/usr/bin/env bash
# Set up everything Qinghe needs on Debian 12, as root: Debian packages, the venv at .venv, pip packages.
# Usage: scripts/setup.sh [runtime|dev]   (dev adds test tools, plate reading and the model toolkit)
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-runtime}"

apt_packages=(
  mosquitto victoria-metrics espeak-ng            # real servers and speech used by the demo and tests
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gir1.2-gst-rtsp-server-1.0 python3-gi  # RTSP camera server
  ffmpeg opencv-doc darknet                       # clip encoding; real imagery: vtest.avi CCTV, dog.jpg truck, horses.jpg field
  libgl1 libglib2.0-0 sqlite3 python3-venv
)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
extras="plates"
[ "$profile" = dev ] && extras="dev,plates,models"
echo "setup: pip install -e .[$extras]"
.venv/bin/python -m pip install -q -e ".[$extras]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import qinghe, cv2, paho.mqtt, onnxruntime" || { echo "setup: install is broken" >&2; exit 1; }
echo "setup: done ($profile)"
