#!/usr/bin/env bash
# expect.sh CODE REGEX CMD ARGS...: runs CMD, passes when it exits with CODE and its output
# (stdout and stderr) matches the extended REGEX. Prints the output either way.
code=$1 regex=$2
shift 2
out=$("$@" 2>&1)
rc=$?
printf '%s\n' "$out"
if [ "$rc" != "$code" ]; then echo "FAIL: exit code $rc, expected $code"; exit 1; fi
if ! grep -qE -- "$regex" <<<"$out"; then echo "FAIL: output does not match: $regex"; exit 1; fi
if [ "$code" = 2 ] && [ "$(grep -c '^keel: ' <<<"$out")" != 1 ]; then
  echo "FAIL: a bad-input error must be one 'keel: ...' line"; exit 1
fi
echo "PASS"
