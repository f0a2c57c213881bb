#!/usr/bin/env bash
# The main job: install what is missing, build, and run the demo pipeline.
# Until the training loop lands, the demo checks the stabilised pipeline end to end (plugins found,
# parameters validated, the LR schedule the scheduler chain produces) without training.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
./build/bin/keel plugins
./build/bin/keel train configs/demo.toml --dry-run
