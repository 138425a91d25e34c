#!/usr/bin/env bash
# Issue #4's peer comparison: cardwatch's GBDT against XGBoost and a scikit-learn
# random forest on the same exported training table (30 days × 500 cards, seed 1),
# the same time split (train 2026-01-01..2026-01-22, test 2026-01-22..2026-01-31)
# and the same 29 features: average precision, ROC AUC, training seconds (median of
# 3) and one-row scoring latency. Prints a markdown report and writes it to
# benchmarks/peers-result.md. Goal misses are reported as FAIL lines, not as a
# non-zero exit.
#
#   benchmarks/peers.sh                      # builds the CLI into .build-peers
#   CARDWATCH=/path/to/cardwatch benchmarks/peers.sh
#
# Python peers live in their own virtual environment, .venv-bench/ (xgboost,
# scikit-learn, numpy from PyPI; created on first use). Knobs: VENV, CARDS, DAYS,
# SEED, REPEATS, SEEDS (training-time seeds, default 7), OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

cards=${CARDS:-500}
days=${DAYS:-30}
seed=${SEED:-1}
repeats=${REPEATS:-3}
seeds=${SEEDS:-7}
venv=${VENV:-$repo/.venv-bench}
out=${OUT:-$repo/benchmarks/peers-result.md}

fail() { echo "peers.sh: error: $*" >&2; exit 1; }
step() { echo "[peers] $*" >&2; }

# 1. The CLI: $CARDWATCH, or a release build in our own scratch path.
if [[ -n "${CARDWATCH:-}" ]]; then
  bin=$CARDWATCH
  [[ -x "$bin" ]] || fail "CARDWATCH=$bin is not an executable file"
else
  command -v swift >/dev/null || fail "swift is not on PATH (or set CARDWATCH to a release binary)"
  step "swift build -c release --product cardwatch --scratch-path .build-peers"
  mkdir -p .build-peers
  if ! swift build -c release --product cardwatch --scratch-path .build-peers >.build-peers/peers-build.log 2>&1; then
    tail -40 .build-peers/peers-build.log >&2
    fail "release build failed (the end of .build-peers/peers-build.log is above)"
  fi
  bin=$repo/.build-peers/release/cardwatch
  [[ -x "$bin" ]] || fail "no binary at $bin after the build"
fi

# 2. The Python environment.
command -v python3 >/dev/null || fail "python3 is not on PATH"
if [[ ! -x "$venv/bin/python" ]]; then
  step "creating $venv"
  python3 -m venv "$venv" || fail "python3 -m venv $venv failed (Debian: apt-get install python3-venv)"
fi
if ! "$venv/bin/python" -c 'import xgboost, sklearn, numpy, threadpoolctl' 2>/dev/null; then
  step "pip install xgboost scikit-learn numpy (into $venv)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check xgboost scikit-learn numpy threadpoolctl \
    || fail "pip install into $venv failed (is PyPI reachable?)"
fi

# 3. The data: one world, one table.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
step "cardwatch generate --days $days --cards $cards --seed $seed"
"$bin" generate --days "$days" --cards "$cards" --seed "$seed" --quiet --out "$tmp/history.jsonl" \
  || fail "cardwatch generate failed"
step "cardwatch features"
"$bin" features --in "$tmp/history.jsonl" --out "$tmp/table.csv" --quiet || fail "cardwatch features failed"

# 4. The comparison. OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (set on some machines, see
# NOTES.md) can slow numpy, so they are unset for this command only; the report
# shows which BLAS kernel threadpoolctl then sees.
for v in OPENBLAS_CORETYPE OPENBLAS_L2_SIZE; do
  [[ -n "${!v:-}" ]] && step "unsetting $v=${!v} for the Python benchmark"
done
started=$(date +%s)
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$venv/bin/python" "$repo/benchmarks/peers.py" \
  --cardwatch "$bin" --table "$tmp/table.csv" --workdir "$tmp" --out "$out" --repeats "$repeats" --seeds "$seeds" \
  --train-from 2026-01-01 --train-to 2026-01-22 --test-from 2026-01-22 --test-to 2026-01-31 \
  --world "cardwatch generate --days $days --cards $cards --seed $seed, then cardwatch features"
step "done in $(($(date +%s) - started)) s; report in ${out#"$repo"/}"
