#!/usr/bin/env bash
# The whole test suite: set up, run `swift test`, again on the generic kernels (x86-64 only), then (when
# ../shared/models is present) check the reference models' full 10,000-image top-1 in a release build. Ends with one
# line "tests: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
Scripts/setup.sh || exit 1
# onnxruntime (PyPI) in a virtualenv, so the export tests also run the files in onnxruntime; skipped if pip fails.
venv=.build/ort-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import onnxruntime, numpy" 2>/dev/null; then
  (python3 -m venv "$venv" && "$venv/bin/pip" install -q onnxruntime numpy) >/dev/null 2>&1 || echo "note: onnxruntime not installed; its export tests will be skipped"
fi
"$venv/bin/python" -c "import onnxruntime, numpy" 2>/dev/null && export WC_ONNXRUNTIME_PYTHON="$PWD/$venv/bin/python"
log=$(mktemp)
swift test 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# Passed: the run's own count ("Test run with N tests in M suites …") less the failed ones; the per-test lines are the
# fallback only (swift test's console dropped about 50 of its 239 "✔ Test … passed" lines from a piped run once).
# (The run's own closing line, "✘ Test run with N tests … failed after", is not a test.)
failed=$(grep -E '^✘ Test .* failed after' "$log" | grep -cv '^✘ Test run with' || true)
total=$(grep -oE 'Test run with [0-9]+ tests?' "$log" | tail -1 | grep -oE '[0-9]+' || true)
if [ -n "$total" ]; then passed=$((total > failed ? total - failed : 0)); else passed=$(grep -cE '^✔ Test .*passed' "$log" || true); fi
rm -f "$log"
# The same suite on the generic kernels, which arm64 (Apple platforms, Linux on ARM) runs, and any x86-64 processor
# without AVX2: the run above took this processor's AVX2 or AVX-512 ones (`WEIGHTCLUSTER_KERNELS`). It reuses the
# debug build; it counts as one more test.
if [ "$status" -eq 0 ] && [ "$(uname -m)" = x86_64 ]; then
  generic=$(mktemp)
  if WEIGHTCLUSTER_KERNELS=generic swift test --skip-build >"$generic" 2>&1; then
    passed=$((passed + 1))
    echo "generic kernels: $(grep -oE 'Test run with [0-9]+ tests? in [0-9]+ suites? passed' "$generic" | tail -1)"
  else
    grep -E '^✘' "$generic" | head -20
    echo "generic kernels: the suite failed (above)"
    failed=$((failed + 1)); status=1
  fi
  rm -f "$generic"
fi
if [ "$status" -eq 0 ] && [ -d ../shared/models ]; then
  if Scripts/check-reference-accuracy.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi
fi
[ "$status" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
echo "tests: $passed passed, $failed failed"
exit "$status"
