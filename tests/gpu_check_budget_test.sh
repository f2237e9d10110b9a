#!/usr/bin/env bash
# shellcheck disable=SC2034  # the variables set here are read by the sourced functions
# tools/gpu-check's time budget, without a GPU or a build: its phase runner, sourced, on
# phases that sleep. Checks that a phase overrunning its limit is stopped there and marked
# TIMED OUT, that it cannot take the budgets of the phases after it, that time a phase
# leaves unused goes to the next one, and that summary.txt is written after every phase.
set -uo pipefail
# shellcheck source=../tools/gpu-check
source "$(dirname "$0")/../tools/gpu-check"

fail() { echo "FAIL: $*"; printf '  %s\n' "${SUMMARY[@]}"; exit 1; }
SUMMARY_FILE=$(mktemp); LOG=$(mktemp)
trap 'rm -f "$SUMMARY_FILE" "$LOG"' EXIT
MIN_PHASE_SECONDS=1 KILL_GRACE=1
BUDGET=9 START=$(date +%s)
PHASES=(tests bench torch)
PHASE_BUDGET=([tests]=2 [bench]=3 [torch]=2)

# tests may use 9 - (3 + 2) = 4 s, not the 30 it asks for; with the clock held at START (a
# second ticking by since START, on a loaded machine, would make it 3).
real_elapsed=$(declare -f elapsed)
elapsed() { echo 0; }
[ "$(phase_limit tests)" = 4 ] || fail "tests' limit is $(phase_limit tests), not 4"
eval "$real_elapsed"
t0=$(date +%s)
run_phase tests "$LOG" sleep 30
rc=$? took=$(( $(date +%s) - t0 ))
[ "$rc" = 124 ] || fail "an overrunning phase should time out (exit 124), got $rc"
[ "$took" -le 5 ] || fail "the overrunning phase ran ${took}s, past its 4 s limit"
# The limit run_phase reads from the real clock: 4 s, or 3 s when a second has ticked by
# since START on a loaded machine (it did, under a concurrent CI build).
grep -qE "^tests .*TIMED OUT \([34]s\)" "$SUMMARY_FILE" || fail "summary.txt lacks the timeout"

# bench finishes at once: its unused budget goes to torch, which gets everything left.
run_phase bench "$LOG" true || fail "a passing phase failed"
grep -q "^bench .*ok" "$SUMMARY_FILE" || fail "summary.txt lacks bench"
limit=$(phase_limit torch)
[ "$limit" -ge 4 ] || fail "torch should get what bench left (>= 4 s), got $limit"

# With nothing left, a phase is skipped and says so.
BUDGET=$(( $(date +%s) - START ))
run_phase torch "$LOG" true && fail "a phase with no time left ran"
grep -q "^torch .*SKIPPED (no time left)" "$SUMMARY_FILE" || fail "summary.txt lacks the skip"
[ "$STATUS" = 1 ] || fail "a timed-out or skipped phase must make the run fail"
echo "gpu-check budget: ok"
printf '  %s\n' "${SUMMARY[@]}"
