#!/usr/bin/env bash
# Runs the built `weightcluster` on the whole hostile corpus (Scripts/make_hostile_corpus.py, with the
# 100,000-node graph) and checks each case as HostileInputTests does, plus what only the binary can show:
# wall time, peak memory (GNU time), and — with strace — that no process opened the planted file outside the
# model folders. Ends with "hostile: N passed, M failed".
#   Scripts/hostile.sh [BINARY]      (default: builds and uses .build/debug/weightcluster)
# Needs python3 with onnx and numpy (Debian: python3-onnx) to write the corpus.
set -uo pipefail
cd "$(dirname "$0")/.."
binary=${1:-}
if [ -z "$binary" ]; then
  swift build --scratch-path .build --product weightcluster >/dev/null || exit 1
  binary=$PWD/.build/debug/weightcluster
fi
python=python3
$python -c "import onnx, numpy" 2>/dev/null || python=/usr/bin/python3
root=$(mktemp -d /tmp/wc-hostile.XXXXXX)
trap 'rm -rf "$root"' EXIT
$python Scripts/make_hostile_corpus.py "$root" >/dev/null || exit 1
mkdir -p "$root/out"
secret="PLANTED-SECRET-0123456789abcdef"
have_strace=0; command -v strace >/dev/null && have_strace=1
setup() {
  local IFS=';'
  for step in $1; do
    step=${step//\{root\}/$root}
    case "$step" in
      secret) mkdir -p "$root/outside"; printf '%s' "$secret" > "$root/outside/secret.bin" ;;
      fifo:*) [ -e "$root/${step#fifo:}" ] || mkfifo "$root/${step#fifo:}" ;;
      dir:*) mkdir -p "$root/${step#dir:}" ;;
      file:*) head -c 64 /dev/zero > "$root/${step#file:}" ;;
      link:*) p=${step#link:}; rm -f "$root/${p%%=*}"; ln -s "${p#*=}" "$root/${p%%=*}" ;;
    esac
  done
}
while IFS=$'\x1f' read -r name expect steps arguments; do
  [[ "$name" == \#* ]] && continue
  setup "$steps"
done < <(tr '\t' '\037' < "$root/cases.tsv")  # tab is IFS whitespace: empty fields would collapse
passed=0; failed=0; worst_rss=0; worst_time=0
printf '%-36s %-6s %5s %8s %9s  %s\n' case expect exit seconds "RSS MiB" result
while IFS=$'\x1f' read -r name expect steps arguments; do
  [[ "$name" == \#* ]] && continue
  IFS='|' read -r -a args <<< "${arguments//\{root\}/$root}"
  trace=()
  [ $have_strace = 1 ] && trace=(strace -f -qq -e trace=open,openat,openat2 -o "$root/trace")
  start=$(date +%s.%N)
  "${trace[@]}" /usr/bin/time -f '%M' -o "$root/rss" timeout -s KILL 60 "$binary" "${args[@]}" \
    >"$root/stdout" 2>"$root/stderr" </dev/null
  status=$?
  seconds=$(echo "$(date +%s.%N) - $start" | bc)
  rss=$(( $(tail -1 "$root/rss" | grep -Eo '^[0-9]+$' || echo 0) / 1024 ))
  errors=$(grep -c '^error: ' "$root/stderr")
  lines=$(wc -l < "$root/stderr")
  problem=""
  if [ $status -ge 128 ] || grep -q "Command terminated by signal" "$root/rss"; then problem="signal/timeout (status $status)"
  elif [ "$expect" = ok ] && [ $status -ne 0 ]; then problem="expected success: $(head -c 300 "$root/stderr")"
  elif [ "$expect" = error ] && { [ $status -eq 0 ] || [ "$errors" -ne 1 ] || ! tail -1 "$root/stderr" | grep -q '^error: '; }; then
    problem="expected one error line: $(head -c 300 "$root/stderr")"
  elif [ "$expect" = error ] && [ "$lines" -ne 1 ] && [ "${args[0]}" != sweep ]; then problem="stderr has $lines lines"
  elif [ $rss -ge 1024 ]; then problem="peak memory $rss MiB"
  elif [ -f "$root/outside/secret.bin" ] && [ "$(cat "$root/outside/secret.bin")" != "$secret" ]; then problem="the planted file changed"
  elif grep -rlsq --exclude=link.npy "$secret" "$root/out"; then problem="the planted secret reached an output"
  elif [ $have_strace = 1 ] && grep -q 'outside/secret.bin' "$root/trace" && ! grep -q 'output_symlink' <<< "$name"; then
    problem="opened the planted file: $(grep 'outside/secret.bin' "$root/trace" | head -1)"
  fi
  [ $rss -gt $worst_rss ] && worst_rss=$rss
  if [ -z "$problem" ]; then passed=$((passed + 1)); result=ok; else failed=$((failed + 1)); result="FAIL $problem"; fi
  printf '%-36s %-6s %5d %8.2f %9d  %s\n' "$name" "$expect" $status "$seconds" $rss "$result"
done < <(tr '\t' '\037' < "$root/cases.tsv")  # tab is IFS whitespace: empty fields would collapse
echo "peak memory of any case: $worst_rss MiB; strace check: $([ $have_strace = 1 ] && echo on || echo off)"
echo "hostile: $passed passed, $failed failed"
[ $failed -eq 0 ]
