#!/usr/bin/env bash
# Times Concuerror on the programs of Lockstep's exhaustive bench (see README.md here).
#
#   CONCUERROR=/path/to/concuerror bench/concuerror/run.sh [ROUNDS]
#
# Each row is ROUNDS (default 3) fresh runs, one after another, of Concuerror with the
# row's arguments, each in its own VM started by clock.escript (Concuerror's own VM flags;
# it times the run from inside) and writing its report to a temporary directory; the
# interleaving count is the report's "Summary:" line. Printed per program and --dpor
# mode, best of the rounds: the interleavings (and how many were sleep-set blocked); the
# wall-clock time from VM start to exit and interleavings/s of it; the time of
# concuerror:run/1 alone; and the exploration's rate: the interleavings after the first,
# over the time from the end of the first to the end of the last (the first one pays for
# instrumenting the modules the test calls: about 1.2 s here).
#
# Not part of `make test` or `make bench`: Concuerror is not a dependency of Lockstep.
set -euo pipefail

if [[ -z "${CONCUERROR:-}" || ! -x "${CONCUERROR}" ]]; then
  echo "run.sh: set CONCUERROR to Concuerror's executable (got '${CONCUERROR:-}'); README.md says how to build it" >&2
  exit 2
fi

rounds="${1:-3}"
if ! [[ "$rounds" =~ ^[1-9][0-9]*$ ]]; then
  echo "run.sh: ROUNDS must be a positive integer, got '$rounds'" >&2
  exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

clock="$here/clock.escript"

# runs "module test expected_status concuerror-flags..." ROUNDS times; sets summary (the
# last report's Summary line) and wall, run, explore (best seconds of each)
measure() {
  local module="$1" test="$2" expected="$3"
  shift 3
  wall="" run="" explore="" summary=""
  local i start stop status line completed explored
  for ((i = 1; i <= rounds; i++)); do
    rm -f "$work/report.txt"
    start=$(date +%s%N)
    set +e
    # Concuerror compiles the .erl itself; run from $work so nothing is left behind
    (cd "$work" && escript "$clock" "$CONCUERROR" -f "$here/$module.erl" -m "$module" \
      -t "$test" --ignore_error deadlock -o "$work/report.txt" -q "$@" >"$work/out.txt" 2>&1)
    status=$?
    set -e
    stop=$(date +%s%N)

    line=$(grep -m1 '^result=' "$work/out.txt" || true)
    summary=$(grep -m1 'Summary:' "$work/report.txt" 2>/dev/null || true)
    if [[ "$status" != "$expected" || -z "$line" || -z "$summary" ]]; then
      echo "run.sh: $module:$test $* exited $status (expected $expected):" >&2
      cat "$work/out.txt" >&2
      [[ -f "$work/report.txt" ]] && cat "$work/report.txt" >&2
      exit 1
    fi

    # the tracer's count of finished interleavings must be the report's
    completed=$(sed -E 's/.*completed=([0-9]+).*/\1/' <<<"$line")
    explored=$(sed -E 's#.* ([0-9]+)/[0-9]+ interleavings explored.*#\1#' <<<"$summary")
    if [[ "$completed" != "$explored" ]]; then
      echo "run.sh: $module:$test $*: traced $completed interleavings, report says $summary" >&2
      exit 1
    fi

    wall=$(awk -v a="$wall" -v b="$(((stop - start) / 1000))" \
      'BEGIN { b /= 1e6; print (a == "" || b < a) ? b : a }')
    run=$(awk -v a="$run" -v b="$(sed -E 's/.*run_us=([0-9]+).*/\1/' <<<"$line")" \
      'BEGIN { b /= 1e6; print (a == "" || b < a) ? b : a }')
    explore=$(awk -v a="$explore" -v b="$(sed -E 's/.*explore_us=([0-9]+).*/\1/' <<<"$line")" \
      'BEGIN { b /= 1e6; print (a == "" || b < a) ? b : a }')
  done
}

echo "Concuerror: $("$CONCUERROR" --version 2>&1 | tail -n1), $(erl -noshell -eval 'io:put_chars(erlang:system_info(otp_release)), halt().' 2>/dev/null | sed 's/^/OTP /')"
echo "rounds: $rounds; uptime: $(uptime)"
echo

fmt='| %-38s | %-19s | %13s | %9s | %6s | %14s | %7s | %9s | %17s |\n'
# shellcheck disable=SC2059 # the format is ours
printf "$fmt" program "--dpor" interleavings "ssb" "wall s" "wall interl./s" "run/1 s" \
  "explore s" "explore interl./s"
# shellcheck disable=SC2059
printf "$fmt" | tr ' ' '-' | sed 's/^|-/|-/'

# program label | module | test | expected exit status (1: the bug is found) | flags
rows=(
  "1 writer, 6 readers of one ETS key|lockstep_readers|readers6|0|--dpor optimal"
  "1 writer, 6 readers of one ETS key|lockstep_readers|readers6|0|--dpor source"
  "1 writer, 8 readers of one ETS key|lockstep_readers|readers8|0|--dpor optimal"
  "1 writer, 8 readers of one ETS key|lockstep_readers|readers8|0|--dpor source"
  "1 writer, 10 readers of one ETS key|lockstep_readers|readers10|0|--dpor optimal"
  "2-client counter, atomic (verified)|lockstep_counter|atomic|0|--dpor optimal"
  "2-client counter, atomic (verified)|lockstep_counter|atomic|0|--dpor source"
  "2-client counter, atomic (verified)|lockstep_counter|atomic|0|--dpor none --disable_sleep_sets true"
  "2-client counter, atomic (verified)|lockstep_counter|atomic|0|--dpor none"
  "2-client counter, get/put (to the bug)|lockstep_counter|racy|1|--dpor optimal"
  "2-client counter, get/put (to the bug)|lockstep_counter|racy|1|--dpor none --disable_sleep_sets true"
)

for row in "${rows[@]}"; do
  IFS='|' read -r label module test expected flags <<<"$row"
  # shellcheck disable=SC2086 # the flags are words
  measure "$module" "$test" "$expected" $flags
  # "Summary: E errors, X/T interleavings explored[ (S sleep-set blocked)]"
  explored=$(sed -E 's#.* ([0-9]+)/[0-9]+ interleavings explored.*#\1#' <<<"$summary")
  ssb=$(sed -nE 's#.*\(([0-9]+) sleep-set blocked\).*#\1#p' <<<"$summary")
  mode="${flags#--dpor }"
  mode="${mode/ --disable_sleep_sets true/, no sleep sets}"
  read -r wall_rate explore_rate < <(awk -v n="$explored" -v w="$wall" -v e="$explore" \
    'BEGIN { printf "%.0f %s\n", n / w, (n > 1 && e > 0) ? sprintf("%.0f", (n - 1) / e) : "-" }')
  if [[ "$expected" == 1 ]]; then explore_rate="(to the bug)"; fi
  # shellcheck disable=SC2059
  printf "$fmt" "$label" "$mode" "$explored" "${ssb:-0}" "$(printf %.2f "$wall")" "$wall_rate" \
    "$(printf %.2f "$run")" "$(printf %.3f "$explore")" "$explore_rate"
done
