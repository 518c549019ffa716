#!/usr/bin/env bash
# First README command: set up, then run the demo (`qinghe demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh runtime
exec .venv/bin/qinghe demo "$@"
