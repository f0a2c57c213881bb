#!/usr/bin/env bash
# one_symbol.sh DIR [EXTRA.so...]: every plugin library exports exactly one dynamic symbol,
# keel_plugin_entry (ARCHITECTURE.md §2 rule 1).
set -u
status=0 n=0
for so in "$1"/*.so "${@:2}"; do
  syms=$(nm -D --defined-only "$so" | awk '{print $3}' | sort)
  n=$((n + 1))
  if [ "$syms" != "keel_plugin_entry" ]; then
    echo "FAIL: $so exports: $(echo $syms)"; status=1
  else
    echo "ok: $so"
  fi
done
[ "$n" -gt 1 ] || { echo "FAIL: no plugins found in $1"; exit 1; }
exit $status
