#!/usr/bin/env bash
# Lint and run the tests: every lane (tests/unit, tests/integration, tests/system), or with --fast only the
# unit lane (in-process, no servers; under 2 minutes on 2 cores). Other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--fast" ]; then
  shift
  scripts/setup.sh
  set -- tests/unit "$@"
else
  scripts/setup.sh test
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest "$@"
