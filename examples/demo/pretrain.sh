#!/usr/bin/env bash
# Reproduces the demo base model in examples/demo/model/: builds the corpus from Debian's
# wordnet-base and bible-kjv, trains a 4,096-id byte-level BPE tokenizer on it, initialises a
# 4.2M-parameter Llama (examples/demo/model_config.json) and pretrains it with configs/pretrain.toml.
# About 20 minutes on 2 CPU cores. Run from anywhere after scripts/build.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${KEEL_VENV:-/opt/keel-venv}/bin/python
python3 examples/demo/build_data.py
mkdir -p runs/pretrain-tokenizer
"$py" examples/demo/train_tokenizer.py examples/demo/data/pretrain.jsonl runs/pretrain-tokenizer
rm -rf runs/pretrain-init runs/pretrain
./build/bin/keel init-model --config examples/demo/model_config.json --out runs/pretrain-init \
  --tokenizer runs/pretrain-tokenizer --seed 1234
./build/bin/keel train configs/pretrain.toml "$@"
rm -rf examples/demo/model
cp -r runs/pretrain/final examples/demo/model
echo "pretrain.sh: the demo base model is in examples/demo/model"
