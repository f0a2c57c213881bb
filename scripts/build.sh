#!/usr/bin/env bash
# Installs what is missing (scripts/deps.sh), then configures and builds keel in build/ (-j2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake --preset default -DKEEL_PYTHON="${KEEL_VENV:-/opt/keel-venv}/bin/python" >/dev/null
cmake --build --preset default
