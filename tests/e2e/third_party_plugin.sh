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
"$keel" plugins --plugin-dir "$tmp/plugin/build" | grep -E '^inverse_sqrt +scheduler +0.1.0'
"$keel" plugins | grep -q '^staged_lr ' || { echo "FAIL: installed keel does not find its plugins"; exit 1; }
cd "$tmp"
out=$("$keel" train "$tmp/plugin/pipeline.toml" --plugin-dir "$tmp/plugin/build" --dry-run)
echo "$out"
# lr = 1e-3 * min((s+1)/100, sqrt(100/(s+1))): step 0 -> 1e-5, step 99 -> 1e-3, step 400 -> sqrt(100/401) * 1e-3
grep -qE 'step +0 +lr 1.000000e-05' <<<"$out"
grep -qE 'step +400 +lr 4.993762e-04' <<<"$out"
[ -f "$tmp/runs/inverse-sqrt-demo/config.toml" ] || { echo "FAIL: no resolved config"; exit 1; }
grep -q 'warmup_steps = 100' "$tmp/runs/inverse-sqrt-demo/config.toml"
echo PASS
