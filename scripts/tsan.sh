#!/usr/bin/env bash
# The whole test suite once under ThreadSanitizer (issue 14, item 18), in a build directory of
# its own (.build-tsan, ignored by git) so the ordinary debug build is left alone. A data race
# reported in our code fails the run (TSan makes the test process exit non-zero); races inside
# dependencies are suppressed, each with its reason, in scripts/tsan-suppressions.txt.
# Extra arguments go to `swift test` (e.g. --filter RuleFile).
# On the 2-core machine: about 13 minutes to build, 6 to run (BENCHMARKS.md, "ThreadSanitizer").
set -euo pipefail
cd "$(dirname "$0")/.."
# Timed tests allow ten times their budget: under TSan everything runs several times slower.
export CARDWATCH_TEST_TIME_SCALE=${CARDWATCH_TEST_TIME_SCALE:-10}
export TSAN_OPTIONS="suppressions=$PWD/scripts/tsan-suppressions.txt halt_on_error=0 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
swift build --build-tests --sanitize=thread --scratch-path .build-tsan
set +o pipefail
swift test --skip-build --sanitize=thread --scratch-path .build-tsan "$@" 2>&1 | grep -vE '^(◇|↳)|^􀟈'
status=${PIPESTATUS[0]}
set -o pipefail
if [ "$status" -ne 0 ]; then echo "ThreadSanitizer run failed (status $status): see the WARNING: ThreadSanitizer reports above" >&2; fi
exit "$status"
