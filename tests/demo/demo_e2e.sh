#!/usr/bin/env bash
# The shipped demo end to end, shortened: build the data from Debian's WordNet and KJV packages,
# run configs/demo_grid.toml (naive and the stabilised pipeline on the embedded model) for 30
# steps, and check both runs finished with every metric and the report was written.
# usage: demo_e2e.sh KEEL SOURCE_DIR OUT_DIR
set -euo pipefail
keel=$1 src=$2 out=$3
cd "$src"
rm -rf "$out"
python3 examples/demo/build_data.py
"$keel" ablate configs/demo_grid.toml --output-dir "$out" --no-progress \
  --set run.steps=30 --set run.eval_every=15 --set run.checkpoint_every=15 --set eval.max_new_tokens=16
fail=0
for run in naive-s1 stabilised-s1; do
  [ -f "$out/$run/final/model.safetensors" ] || { echo "FAIL: $run has no final model"; fail=1; }
  last_eval=$(grep '"eval":true' "$out/$run/metrics.jsonl" | tail -1)
  for m in distinct_ngrams self_bleu entropy mode_share; do
    grep -q "\"$m\":" <<<"$last_eval" || { echo "FAIL: $run: no $m at its last evaluation"; fail=1; }
  done
done
# the stabilised run used every technique: the resolved config lists them all
for p in staged_lr warmup_cosine dropout label_smoothing data_mix lr_cut embedding_noise reshuffle temperature rollback; do
  grep -q "plugin = '$p'\|plugin = \"$p\"" "$out/stabilised-s1/config.toml" || { echo "FAIL: stabilised lacks $p"; fail=1; }
done
[ -s "$out/report.html" ] || { echo "FAIL: no report"; fail=1; }
[ $fail = 0 ] && echo "PASS: demo grid trained both pipelines and wrote $out/report.html"
exit $fail
