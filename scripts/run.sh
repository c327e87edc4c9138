#!/usr/bin/env bash
# The main job on a fresh machine: the embedded server (the gateway and every model service in one process,
# SQLite and files under data/, ONNX Runtime on the CPU) on http://127.0.0.1:8000, with the committed
# bootstrap models. Extra arguments go to `kfashion serve` (e.g. --port 9000 --host 0.0.0.0).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/kfashion serve --data-dir data "$@"
