#!/usr/bin/env bash
# The test command: install what is missing, build, run every test with ctest (its summary is the
# last line printed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
cd build
exec ctest --output-on-failure -j2 --timeout 900
