#!/usr/bin/env bash
# The main job on a fresh machine. Until the gateway lands (issue 4) it generates a K-Fashion-format
# dataset of 1,000 images with a contact sheet to look at. Extra arguments go to `kfashion synth`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/kfashion synth --count 1000 --out data/synth --seed 0 --preview data/synth-preview.png "$@"
