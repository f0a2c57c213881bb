#!/usr/bin/env bash
# The main job: install what is missing, build, build the demo data from Debian's WordNet and KJV
# packages, then train the embedded demo model twice, naive SFT and the stabilised pipeline
# (configs/demo_grid.toml), and write the report comparing them. About 5 minutes of training
# on 2 cores. Run it again and the finished runs are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
python3 examples/demo/build_data.py
./build/bin/keel ablate configs/demo_grid.toml "$@"
echo "open runs/demo/report.html (naive vs stabilised: curves, alarms, remedies, probe answers side by side)"
