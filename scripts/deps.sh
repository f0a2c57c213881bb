#!/usr/bin/env bash
# Installs what keel needs on Debian bookworm, idempotently: Debian packages for the build, and a
# Python venv (outside the clone, so CI finds it again) holding the pinned torch wheel (its libtorch
# is what keel links) and the Hugging Face reference stack the tests compare against.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/versions.env"

debs=(build-essential cmake ninja-build pkg-config git python3 python3-venv python3-pip
      libboost-dev libtomlplusplus-dev libspdlog-dev libfmt-dev doctest-dev nlohmann-json3-dev
      libpcre2-dev libcli11-dev libxxhash-dev libicu-dev libgloo-dev clang libclang-rt-dev
      wordnet-base bible-kjv chromium)  # demo data sources; chromium renders the report in a test
# (clang, libclang-rt-dev: libFuzzer and the sanitizers for tests/fuzz)
# (libgloo-dev: headers only, which c10d's ProcessGroupGloo.hpp includes; the code is libtorch's own)
missing=()
for p in "${debs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "keel deps: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

venv=${KEEL_VENV:-/opt/keel-venv}
stamp="$venv/.keel-pins-$(sha1sum "$here/scripts/versions.env" | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q --progress-bar off \
    "torch==$TORCH_VERSION" "transformers==$TRANSFORMERS_VERSION" "tokenizers==$TOKENIZERS_VERSION" \
    "safetensors==$SAFETENSORS_VERSION" "trl==$TRL_VERSION" "tensorboard==$TENSORBOARD_VERSION" \
    "nltk==$NLTK_VERSION" "peft==$PEFT_VERSION" numpy
  touch "$stamp"
fi
