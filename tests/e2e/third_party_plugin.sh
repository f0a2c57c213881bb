#!/usr/bin/env bash
# third_party_plugin.sh BUILD_DIR SOURCE_DIR: installs keel to a temporary prefix, builds
# examples/third_party_plugin out of tree with only find_package(KeelSDK), validates the plugin and
# runs it in a pipeline by name from --plugin-dir.
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
for f in bin/keel include/keel/keel_plugin.h include/keel/plugin.hpp include/keel/dlpack.h \
         lib/cmake/KeelSDK/KeelSDKConfig.cmake lib/keel/plugins/staged_lr.so; do
  [ -e "$tmp/prefix/$f" ] || { echo "FAIL: install lacks $f"; exit 1; }
done
# Out of tree: a copy of the example, so nothing of the keel source tree is in reach.
cp -r "$src/examples/third_party_plugin" "$tmp/plugin"
cmake -S "$tmp/plugin" -B "$tmp/plugin/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$tmp/plugin/build" >/dev/null
keel="$tmp/prefix/bin/keel"
"$keel" plugins validate "$tmp/plugin/build/inverse_sqrt.so"
listing=$("$keel" plugins --plugin-dir "$tmp/plugin/build")
grep -cE '^(inverse_sqrt +scheduler|freeze_embeddings +remedy) +0.1.0' <<<"$listing" | grep -qx 2
listing=$("$keel" plugins)
grep -q '^staged_lr ' <<<"$listing" || { echo "FAIL: installed keel does not find its plugins"; exit 1; }
cd "$tmp"
out=$("$keel" train "$tmp/plugin/pipeline.toml" --plugin-dir "$tmp/plugin/build" --dry-run)
echo "$out"
# lr = 1e-3 * min((s+1)/100, sqrt(100/(s+1))): step 0 -> 1e-5, step 99 -> 1e-3, step 400 -> sqrt(100/401) * 1e-3
grep -qE 'step +0 +lr 1.000000e-05' <<<"$out"
grep -qE 'step +400 +lr 4.993762e-04' <<<"$out"
[ -f "$tmp/runs/inverse-sqrt-demo/config.toml" ] || { echo "FAIL: no resolved config"; exit 1; }
grep -q 'warmup_steps = 100' "$tmp/runs/inverse-sqrt-demo/config.toml"
echo "ok: the scheduler plugin runs in a pipeline"

# The third-party remedy, fired by an alarm in a real (tiny) training run: a dataset whose every
# answer is the same sentence collapses the model, mode_share alarms, freeze_embeddings acts.
cd "$tmp"
cat > config.json <<'JSON'
{"model_type": "llama", "vocab_size": 288, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
 "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256, "tie_word_embeddings": false}
JSON
"$keel" init-model --config config.json --out model --tokenizer byte >/dev/null
python3 "$src/tests/common/collapse_data.py" collapse.jsonl
cat > remedy.toml <<'TOML'
[run]
name = "freeze"
steps = 80
batch_size = 8
seq_len = 128
checkpoint_every = 4
eval_every = 4
keep_last = 100
[optim]
lr = 3e-3
[model]
path = "model"
chat_template = "chatml"
[data.target]
path = "collapse.jsonl"
[eval]
num_prompts = 8
max_new_tokens = 12
[[pipeline]]
plugin = "mode_share"
[[pipeline]]
plugin = "freeze_embeddings"
on = ["mode_share"]
steps = 8
max_fires = 1
TOML
"$keel" train remedy.toml --plugin-dir "$tmp/plugin/build" --no-progress 2>&1 | grep -E "alarm|remedy|frozen|done" || true
python3 - <<'PY'
import json, os, struct, sys
rows = [json.loads(l) for l in open("runs/freeze/metrics.jsonl")]
fired = [f for x in rows if isinstance(x.get("remedies"), list) for f in x["remedies"] if f["remedy"] == "freeze_embeddings"]
if len(fired) != 1:
    sys.exit(f"FAIL: freeze_embeddings fired {len(fired)} times")
s = fired[0]["step"]
def tensor(step, name):
    raw = open(f"runs/freeze/checkpoints/step-{step:06d}/model.safetensors", "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    b, e = h[name]["data_offsets"]
    return raw[8 + n + b:8 + n + e]
emb, other = "model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight"
if tensor(s, emb) != tensor(s + 4, emb) or tensor(s + 4, emb) != tensor(s + 8, emb):
    sys.exit("FAIL: the embeddings moved while frozen")
if tensor(s, other) == tensor(s + 8, other):
    sys.exit("FAIL: the rest of the model did not train")
if tensor(s + 8, emb) == tensor(s + 12, emb):
    sys.exit("FAIL: the embeddings stayed frozen after the window")
print(f"ok: freeze_embeddings fired at step {s}; embeddings unchanged for steps {s}..{s + 8}, training again after")
PY
echo PASS
