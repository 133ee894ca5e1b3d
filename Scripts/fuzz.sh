#!/usr/bin/env bash
# Fuzzes the ONNX loader + validation, the .npy and IDX readers, `run` on small graphs, the packed-file loader and the
# packed-weight product on chosen shapes against BLAS (Fuzz/Support).
#   Scripts/fuzz.sh [RUNS] [SECONDS] [TARGET…]   defaults: 1000000 executions or 600 s per target, whichever
#                                                 comes first; targets onnx npy idx run packed product
# With libFuzzer (the Swift toolchain's, `-sanitize=fuzzer,address`: coverage-guided, AddressSanitizer on, the C kernels
# instrumented too),
# in .build-fuzz; if that build fails, the same targets run under wc-fuzz's seeded mutation loop instead
# (no coverage guidance, no sanitizer) and the script says so. Seeds come from the committed fixtures; new
# corpus entries go to .build-fuzz/corpus/TARGET, crashing inputs to .build-fuzz/findings/. Ends with
# "fuzz: N passed, M failed" (one per target; a target fails on any crash, sanitizer report, leak-free timeout or OOM).
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1000000}
seconds=${2:-600}
shift $(( $# < 2 ? $# : 2 ))
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(onnx npy idx run packed product)
scratch=.build-fuzz
fixtures=Tests/WeightClusterTests/Fixtures
mode=libfuzzer
mkdir -p $scratch
if ! swift build --scratch-path $scratch --product wc-fuzz -c release \
      -Xswiftc -sanitize=fuzzer,address -Xswiftc -DWC_LIBFUZZER -Xswiftc -use-ld=lld \
      -Xcc -fsanitize=fuzzer-no-link,address >$scratch/build.log 2>&1; then
  echo "note: the libFuzzer build failed (see $scratch/build.log); using wc-fuzz's seeded mutation loop instead"
  mode=mutation
  swift build --scratch-path .build --product wc-fuzz -c release >/dev/null || exit 1
fi
bin=$([ $mode = libfuzzer ] && echo $scratch/release/wc-fuzz || echo .build/release/wc-fuzz)
# Seed folders, one per target.
seeds=$scratch/seeds
rm -rf "$seeds"; mkdir -p "$seeds"/{onnx,npy,idx,run,packed,product} $scratch/findings
for f in $fixtures/ops/*.onnx $fixtures/hostile/m/*/model.onnx $fixtures/models/tiny_*opset13.onnx; do
  cp "$f" "$seeds/onnx/$(echo "$f" | tr / _)"
done
for f in $fixtures/packed/*.wcm; do cp "$f" "$seeds/packed/$(basename "$f")"; done
cp $fixtures/product/*.bin "$seeds/product/"
for f in $fixtures/hostile/data/*.npy $fixtures/ops/*.input.npy; do cp "$f" "$seeds/npy/$(echo "$f" | tr / _)"; done
python3 - "$seeds" "$fixtures" <<'PY'
import glob, os, struct, sys
seeds, fixtures = sys.argv[1], sys.argv[2]
idx = [b"\0\0\x08\x03" + struct.pack(">III", 2, 3, 3) + bytes(range(18)),
       b"\0\0\x08\x01" + struct.pack(">I", 4) + b"\0\1\2\3",
       b"\0\0\x08\x02" + struct.pack(">II", 2, 2) + b"\xff" * 4]
for i, data in enumerate(idx):
    open(os.path.join(seeds, "idx", "seed%d" % i), "wb").write(data)
for path in sorted(glob.glob(os.path.join(fixtures, "ops", "*.onnx"))):
    model = open(path, "rb").read()
    if len(model) < 65536:
        data = struct.pack(">H", len(model)) + model + bytes(range(64))
        open(os.path.join(seeds, "run", os.path.basename(path)), "wb").write(data)
PY
passed=0; failed=0
for t in "${targets[@]}"; do
  mkdir -p $scratch/corpus/$t
  log=$scratch/fuzz-$t.log
  start=$(date +%s)
  if [ $mode = libfuzzer ]; then
    WC_FUZZ_TARGET=$t ASAN_OPTIONS=detect_leaks=0 "$bin" -runs="$runs" -max_total_time="$seconds" -timeout=10 \
      -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 -artifact_prefix=$scratch/findings/$t- \
      $scratch/corpus/$t "$seeds/$t" >"$log" 2>&1
    status=$?
    executions=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
  else
    "$bin" "$t" "$runs" 15 "$seeds/$t"/* >"$log" 2>&1
    status=$?
    executions=$(grep -Eo '^[a-z]+: [0-9]+ executions without a crash' "$log" | grep -Eo '[0-9]+' | head -1)
  fi
  elapsed=$(( $(date +%s) - start ))
  if [ $status -eq 0 ]; then passed=$((passed + 1)); verdict="no crash"; else failed=$((failed + 1)); verdict="FINDING (exit $status), see $log"; fi
  echo "$t ($mode): ${executions:-?} executions in ${elapsed} s, corpus $(ls $scratch/corpus/$t | wc -l) entries: $verdict"
done
echo "fuzz: $passed passed, $failed failed"
[ $failed -eq 0 ]
