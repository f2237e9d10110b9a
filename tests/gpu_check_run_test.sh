#!/usr/bin/env bash
# shellcheck disable=SC2016  # the stubs' $-expressions are expanded when the stubs run
# tools/gpu-check run, without a GPU or a build: cmake, ctest and the binaries the build
# makes are stubs that log their calls. Checks that the GPU tests run right after the build
# and the rest after them, what --quick runs, that $OUT holds only summary.txt,
# logs.tar.gz and musiq_bench.json (every log in the archive) and that anything else there
# fails the run, and that the carried pkgconf goes on PATH as pkg-config where none is.
#   gpu_check_run_test.sh [PYTHON with Pillow, to read the images' sizes]
set -uo pipefail
python=${1:-python3}
script=$(cd "$(dirname "$0")/.." && pwd)/tools/gpu-check
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; sed 's/^/  /' "$tmp/out/summary.txt" 2> /dev/null; exit 1; }

# A .deps as `prepare` leaves it, with a pkgconf that says who it is.
mkdir -p "$tmp/deps/root/usr/bin" "$tmp/stubs" "$tmp/build"
printf '#!/bin/sh\necho fake pkgconf\n' > "$tmp/deps/root/usr/bin/pkgconf"
cat > "$tmp/stubs/cmake" <<'EOF'
#!/bin/sh
echo "cmake $*" >> "$CALLS"
case "$1" in
  --version) echo "cmake version 3.25.1" ;;
  --build) cp "$STUBS/built-musiq" "$2/musiq" && cp "$STUBS/built-musiq_bench" "$2/musiq_bench" ;;
esac
EOF
cat > "$tmp/stubs/ctest" <<'EOF'
#!/bin/sh
echo "ctest $*" >> "$CALLS"
while [ $# -gt 0 ]; do [ "$1" = --output-junit ] && echo '<testsuite/>' > "$2"; shift; done
[ -n "${STRAY:-}" ] && touch "$OUT/$STRAY"
echo "100% tests passed, 0 tests failed out of 3"
EOF
cat > "$tmp/stubs/built-musiq_bench" <<'EOF'
#!/bin/sh
for a; do case $a in --benchmark_out=*) echo '{}' > "${a#*=}" ;; esac; done
EOF
cat > "$tmp/stubs/built-musiq" <<'EOF'
#!/bin/sh
echo "musiq $*" >> "$CALLS"
echo '{"device": "cuda", "runs": 5, "per_image_ms": {"total": {"p50": 2.5}, "model": {"p50": 1.5}}}'
EOF
chmod +x "$tmp"/stubs/* "$tmp/deps/root/usr/bin/pkgconf"
: > "$tmp/build/bench-random-full.h5"  # the quick run's model, made once

run() {  # [run options]: tools/gpu-check run with the stubs, into a fresh $tmp/out
  rm -rf "$tmp/out" && : > "$tmp/calls"
  env PATH="$tmp/stubs:$PATH" STUBS="$tmp/stubs" CALLS="$tmp/calls" OUT="$tmp/out" \
    GPU_CHECK_DEPS="$tmp/deps" GPU_CHECK_BUILD_DIR="$tmp/build" GPU_CHECK_TORCH=0 \
    bash "$script" run "$@" > "$tmp/stdout" 2>&1
}
out_files() { (cd "$tmp/out" && find . -type f -printf '%f\n' | sort | tr '\n' ' '); }
archived() { tar -tzf "$tmp/out/logs.tar.gz" | sed 's|^\./||' | grep . | sort | tr '\n' ' '; }
line_of() { grep -n -m1 -e "$1" "$tmp/calls" | cut -d: -f1; }

# The whole run: GPU tests, then the rest, then the benchmarks.
run || { cat "$tmp/stdout"; fail "the stubbed run failed"; }
build=$(line_of "^cmake --build") gpu=$(line_of "^ctest .*-L gpu") rest=$(line_of '^ctest .*-LE gpu|network')
[ -n "$build" ] && [ -n "$gpu" ] && [ -n "$rest" ] || fail "missing calls: $(cat "$tmp/calls")"
[ "$build" -lt "$gpu" ] && [ "$gpu" -lt "$rest" ] || fail "not build, ctest -L gpu, the rest: $(cat "$tmp/calls")"
[ "$(grep -c "^ctest" "$tmp/calls")" = 2 ] || fail "ctest ran other than twice"
[ "$(out_files)" = "logs.tar.gz musiq_bench.json summary.txt " ] || fail "\$OUT holds: $(out_files)"
want="bench.log build.log configure.log ctest-gpu-junit.xml ctest-gpu.log ctest-other-junit.xml ctest-other.log env.txt "
[ "$(archived)" = "$want" ] || fail "logs.tar.gz holds: $(archived)"
grep -q "^gpu-tests .* ok" "$tmp/out/summary.txt" || fail "no gpu-tests phase in the summary"
grep -q "^result  *PASS" "$tmp/out/summary.txt" || fail "the summary lacks PASS"

# --quick: the GPU tests and `musiq bench` at both sizes, nothing else, in 230 s.
run --quick || { cat "$tmp/stdout"; fail "the stubbed quick run failed"; }
[ "$(grep -c "^ctest" "$tmp/calls")" = 1 ] && grep -q "^ctest .*-L gpu" "$tmp/calls" ||
  fail "--quick's ctest calls: $(grep "^ctest" "$tmp/calls")"
for size in 1024x768 4032x3024; do
  grep -q "^musiq bench .*--device cuda .*bench-$size.jpg" "$tmp/calls" || fail "no musiq bench at $size"
  grep -q "^ *cli-bench $size: cuda, total p50 2.5 ms" "$tmp/out/summary.txt" || fail "no $size line"
  [ "$("$python" -c 'import sys; from PIL import Image; print("%dx%d" % Image.open(sys.argv[1]).size)' \
       "$tmp/build/bench-$size.jpg")" = "$size" ] || fail "bench-$size.jpg has another size"
done
[ "$(out_files)" = "logs.tar.gz summary.txt " ] || fail "--quick: \$OUT holds: $(out_files)"
[[ " $(archived) " == *" cli-bench-4032x3024.json "* ]] || fail "--quick's archive: $(archived)"
grep -q "^budget  *230s; phases (own budget): configure (15s) build (60s) gpu-tests (110s) cli-bench (45s) $" \
  "$tmp/out/summary.txt" || fail "--quick's phases or budget"
grep -q "^result  *PASS" "$tmp/out/summary.txt" || fail "--quick: the summary lacks PASS"

# A file some phase leaves in $OUT fails the run.
STRAY=stray.log run && fail "a stray file in \$OUT passed"
grep -q "^unexpected in \$OUT .*: stray.log" "$tmp/out/summary.txt" || fail "the stray file is not named"

# GPU_CHECK_THROUGHPUT=1 adds its phase, which says why it cannot run here.
GPU_CHECK_THROUGHPUT=1 run || { cat "$tmp/stdout"; fail "the stubbed run with throughput failed"; }
grep -q "^torch-throughput not run: " "$tmp/out/summary.txt" || fail "no torch-throughput line"

# Its command: 224x224 and 1024x768 at batch 1, 8 and 32 and 12 MP at batch 1 only, each
# precision, with a python whose torch-compare only logs its arguments.
cat > "$tmp/stubs/python" <<'EOF'
#!/bin/sh
[ "$1" = tools/torch-compare ] || exec "$REAL_PYTHON" "$@"
echo "torch-compare $*" >> "$CALLS"
EOF
chmod +x "$tmp/stubs/python" && : > "$tmp/calls"
env CALLS="$tmp/calls" PYTHON="$tmp/stubs/python" REAL_PYTHON="$python" \
  bash "$script" throughput "$tmp/build" "$tmp/throughput" > "$tmp/stdout" 2>&1 ||
  { cat "$tmp/stdout"; fail "gpu-check throughput failed"; }
precisions="--torch-precision bf16 --torch-precision fp32 --torch-precision tf32 "
grep -q -e "--device cuda .*$precisions.*--batch 1 --batch 8 --batch 32 .*bench-1024x768.jpg .*bench-224x224.jpg$" \
  "$tmp/calls" || fail "no batch 1/8/32 run at 1024x768 and 224x224: $(cat "$tmp/calls")"
grep -q -e "--device cuda .*$precisions.*--batch 1 --json [^ ]* [^ ]*bench-4032x3024.jpg$" \
  "$tmp/calls" || fail "no batch-1 run at 12 MP: $(cat "$tmp/calls")"
[ "$(wc -l < "$tmp/calls")" = 2 ] || fail "torch-compare ran other than twice: $(cat "$tmp/calls")"

# No pkg-config on PATH: the carried pkgconf under that name; one on PATH stays.
mkdir -p "$tmp/bare"
ln -s "$(command -v mkdir)" "$tmp/bare/mkdir" && ln -s "$(command -v ln)" "$tmp/bare/ln" || fail "ln"
# shellcheck source=../tools/gpu-check
source "$script"
saved_path=$PATH
# shellcheck disable=SC2123  # on purpose: a PATH without pkg-config
PATH=$tmp/bare
put_pkgconf_on_path "$tmp/deps/root/usr" "$tmp/deps/bin" || fail "put_pkgconf_on_path failed"
[ "$(pkg-config)" = "fake pkgconf" ] || fail "pkg-config is not the carried pkgconf"
PATH=$tmp/stubs:$saved_path
ln -s "$tmp/stubs/cmake" "$tmp/stubs/pkg-config"
put_pkgconf_on_path "$tmp/deps/root/usr" "$tmp/deps/bin2" || fail "put_pkgconf_on_path failed"
[ "$(command -v pkg-config)" = "$tmp/stubs/pkg-config" ] || fail "the machine's pkg-config was shadowed"
PATH=$saved_path
echo "gpu-check run: ok"
