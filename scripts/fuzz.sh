#!/usr/bin/env bash
# Fuzzes one parser with libFuzzer (+ AddressSanitizer, UndefinedBehaviorSanitizer):
#   scripts/fuzz.sh TARGET SECONDS     run TARGET for SECONDS (corpus kept in build-fuzz/corpus/)
#   scripts/fuzz.sh --build            build the targets only (build-fuzz/, clang)
#   scripts/fuzz.sh --list             the targets
# First it replays tests/fuzz/regressions/TARGET/* (every finding so far); a crash, leak, timeout
# or sanitizer report fails the run and leaves the input in build-fuzz/findings/TARGET/.
# The last line says executions per second and coverage. Exits 77 (ctest: skipped) without clang.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/build-fuzz"
targets=$(cd "$here/tests/fuzz" && ls *.cpp | sed 's/\.cpp$//' | tr '\n' ' ')  # one per .cpp, as CMakeLists.txt

if ! command -v clang++ >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "fuzz: SKIPPED: clang and libFuzzer are not installed (apt-get install clang libclang-rt-dev)"
  exit 77
fi
case "${1:-}" in
  --list) echo "$targets"; exit 0 ;;
  --build | "") ;;
  *) [[ " $targets " == *" $1 "* ]] || { echo "fuzz: unknown target '$1' (one of: $targets)" >&2; exit 2; } ;;
esac

# Serialised: ctest runs the targets two at a time and each one asks for the build first.
exec 9>"$here/.fuzz-build.lock"
flock 9
if [ ! -f "$out/build.ninja" ]; then
  cmake -S "$here/tests/fuzz" -B "$out" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
fi
cmake --build "$out" -j2 | grep -v "^\[" || true
[ -x "$out/fuzz_plugin_descriptor" ] || { echo "fuzz: the build failed" >&2; exit 1; }
[ -d "$out/seeds" ] || python3 "$here/tests/fuzz/make_seeds.py" "$out/seeds"
flock -u 9
[ "${1:-}" = "--build" ] || [ -z "${1:-}" ] && exit 0

target=$1 seconds=${2:-30}
bin="$out/fuzz_$target"
shared=${KEEL_SHARED_DATA:-$(cd "$here/.." && pwd)/shared/data}
if grep -q "shared_data(" "$here/tests/fuzz/$target.cpp" && [ ! -d "$shared/tokenizers/qwen3" ]; then
  echo "fuzz: $target: SKIPPED: it reads the real Qwen3 tokenizer in $shared, which is absent"
  exit 77
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$out/corpus/$target" "$out/findings/$target" "$out/seeds/$target"
regressions="$here/tests/fuzz/regressions/$target"
if compgen -G "$regressions/*" >/dev/null; then
  "$bin" -rss_limit_mb=2048 -timeout=10 "$regressions"/* >"$out/findings/$target/replay.log" 2>&1 ||
    { tail -40 "$out/findings/$target/replay.log"; echo "fuzz: $target: a regression input fails again"; exit 1; }
  echo "fuzz: $target: $(ls "$regressions" | wc -l) regression input(s) pass"
fi
log="$out/findings/$target/last.log"
set +e
"$bin" "$out/corpus/$target" "$out/seeds/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -max_len=65536 -print_final_stats=1 -artifact_prefix="$out/findings/$target/" >"$log" 2>&1
rc=$?
set -e
if [ $rc -ne 0 ]; then
  grep -m1 -B2 -A30 "ERROR\|WARNING: \|runtime error\|==[0-9]*==" "$log" | head -60 || tail -40 "$log"
  echo "fuzz: $target: FINDING (exit $rc); the input: $(ls -t "$out/findings/$target"/{crash,leak,timeout,oom}-* 2>/dev/null | head -1)"
  exit 1
fi
runs=$(grep -o "stat::number_of_executed_units: *[0-9]*" "$log" | grep -o "[0-9]*$")
eps=$(grep -o "stat::average_exec_per_sec: *[0-9]*" "$log" | grep -o "[0-9]*$")
cov=$(grep -o "cov: [0-9]* ft: [0-9]*" "$log" | tail -1)
echo "fuzz: $target: no finding in ${seconds} s: $runs runs, $eps exec/s, $cov, corpus $(ls "$out/corpus/$target" | wc -l) inputs, peak RSS $(grep -o "peak_rss_mb: *[0-9]*" "$log" | grep -o "[0-9]*$") MB"
