#!/usr/bin/env bash
# Install everything (scripts/setup.sh), then run every test:
#   1. C unit tests                       make unit
#   2. C unit tests under ASan + UBSan    make asan
#   3. Python oracle tests                .venv/bin/python -m pytest tests/oracle
#   4. Python end-to-end tests            .venv/bin/python -m pytest tests/e2e
#      (a real OpenAI-compatible server on loopback, with a fault-injection proxy)
#   5. fuzz stage under ASan + UBSan      .venv/bin/python -m pytest tests/fuzz
#      (seeded mutants of model files, JSONL and YAML: clean errors only, no crash)
# Every stage runs even if an earlier one failed; the summary at the end lists each
# stage and the test counts its runner reported. Exit status is non-zero if anything
# failed. A missing model or binary is a failure, never a skip.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
T0=$SECONDS

bash scripts/setup.sh

LOGDIR=$(mktemp -d)
trap 'rm -rf "$LOGDIR"' EXIT
declare -a NAMES=() RESULTS=()
TOTAL_PASS=0
TOTAL_FAIL=0

# run_stage NAME KIND CMD... : KIND is cmocka or pytest (how to count tests in its log)
run_stage() {
    local name=$1 kind=$2
    shift 2
    local log="$LOGDIR/$name.log" t=$SECONDS rc=0 pass=0 fail=0
    printf '\n[test] === %s: %s\n' "$name" "$*"
    "$@" 2>&1 | tee "$log" || rc=$?
    case $kind in
    cmocka)
        # cmocka prints "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s)..." per suite
        pass=$(sed -n 's/^\[  PASSED  \] \([0-9][0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
        fail=$(sed -n 's/^\[  FAILED  \] \([0-9][0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
        ;;
    pytest)
        local line
        line=$(grep -E '^=+ .*(passed|failed|error|no tests ran).* in [0-9.]+s' "$log" | tail -1 || true)
        pass=$({ grep -oE '[0-9]+ passed' <<<"$line" || true; } | awk '{s+=$1} END {print s+0}')
        fail=$({ grep -oE '[0-9]+ (failed|errors?)' <<<"$line" || true; } | awk '{s+=$1} END {print s+0}')
        ;;
    esac
    # A failing stage whose runner reported no failing test (build error, crash,
    # nothing collected) still counts as one failure.
    if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
    if [ "$rc" -eq 0 ] && [ "$pass" -eq 0 ]; then
        echo "[test] $name ran no test: counted as a failure"
        rc=1
        fail=1
    fi
    TOTAL_PASS=$((TOTAL_PASS + pass))
    TOTAL_FAIL=$((TOTAL_FAIL + fail))
    NAMES+=("$name")
    if [ "$rc" -eq 0 ]; then
        RESULTS+=("ok      $pass passed ($((SECONDS - t))s)")
    else
        RESULTS+=("FAILED  $pass passed, $fail failed, exit $rc ($((SECONDS - t))s)")
    fi
}

run_stage unit cmocka make -j"$JOBS" unit
run_stage asan cmocka make -j"$JOBS" asan
# build-asan/meteor for the Python tests that must run clean under the sanitizers
make -j"$JOBS" asan-bin >"$LOGDIR/asan-bin.log" 2>&1 || { cat "$LOGDIR/asan-bin.log"; echo "[test] make asan-bin failed"; TOTAL_FAIL=$((TOTAL_FAIL + 1)); }
# -p no:cacheprovider: leave no .pytest_cache in the clone
# --durations: the slowest tests are listed so the suite can be kept well inside CI time.
run_stage oracle pytest .venv/bin/python -m pytest tests/oracle -ra -p no:cacheprovider --durations=25
run_stage e2e pytest .venv/bin/python -m pytest tests/e2e -ra -p no:cacheprovider --durations=10
run_stage fuzz pytest .venv/bin/python -m pytest tests/fuzz -ra -p no:cacheprovider

printf '\n[test] ===== summary (%ds)\n' "$((SECONDS - T0))"
for i in "${!NAMES[@]}"; do
    printf '[test]   %-8s %s\n' "${NAMES[$i]}" "${RESULTS[$i]}"
done
echo "$TOTAL_PASS passed, $TOTAL_FAIL failed"
[ "$TOTAL_FAIL" -eq 0 ]
