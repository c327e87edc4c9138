#!/usr/bin/env bash
# Create .venv (Python 3.11) and install the project with its pinned dependencies. Idempotent and quick
# when nothing changed: it reinstalls only when pyproject.toml is newer than the last install.
# `scripts/setup.sh test` also makes the tools the tests run beside the project in environments of their
# own (their pins are extras of pyproject.toml that cannot share .venv): .venv-triton (a Triton server),
# .venv-deploy (hadolint, kubernetes-validate, checkov) and .venv-milvus (a Milvus server).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "setup: $PYTHON not found; K-Fashion Serve needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev,train,milvus]'
  touch "$stamp"
fi

# A virtual environment holding only one extra's pinned packages (not the project).
side_env() {
  local folder=$1 extra=$2
  if [ -f "$folder/.installed" ] && [ ! pyproject.toml -nt "$folder/.installed" ]; then
    return
  fi
  rm -rf "$folder"
  "$PYTHON" -m venv "$folder"
  mapfile -t pins < <(.venv/bin/python -c "import sys, tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies'][sys.argv[1]], sep=chr(10))" "$extra")
  "$folder/bin/python" -m pip install --quiet "${pins[@]}"
  touch "$folder/.installed"
}

if [ "${1:-}" = "test" ]; then
  side_env .venv-triton triton-server
  side_env .venv-deploy deploy-checks
  side_env .venv-milvus milvus-server
fi
