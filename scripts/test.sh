#!/usr/bin/env bash
# Second README command: set up with test tools, then lint, type-check and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false YOLO_CONFIG_DIR="$PWD/var/ultralytics" MPLBACKEND=Agg
echo "test: ruff"; .venv/bin/ruff check .
echo "test: mypy --strict"; .venv/bin/mypy
echo "test: pytest"
set +e
.venv/bin/python -m pytest -q "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "test: pytest collected no tests: failing" >&2; exit 1; fi
exit "$rc"
