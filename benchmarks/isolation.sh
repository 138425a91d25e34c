#!/usr/bin/env bash
# Issue 15 goal (c): cardwatch's Isolation Forest against scikit-learn's IsolationForest
# (300 trees) on the same replayed feature table of the generated world (30 days × 500
# cards, seed 1): train days 1–21, test days 22–30, labels only for scoring. ROC AUC and
# AP (median of seeds), fit time (median of fits). Prints a markdown report and writes it
# to benchmarks/isolation-result.md; goal misses are FAIL lines, not a non-zero exit.
#
#   benchmarks/isolation.sh                      # builds the CLI into .build-peers
#   CARDWATCH=/path/to/cardwatch benchmarks/isolation.sh
#
# Python lives in .venv-bench/ (scikit-learn, numpy from PyPI; created on first use), as
# for benchmarks/peers.sh. Knobs: VENV, CARDS, DAYS, SEED, SEEDS, REPEATS, OUT; FEATURE_CHECK=1 also
# measures the isolation score as a 30th feature of the GBDT.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

cards=${CARDS:-500}
days=${DAYS:-30}
seed=${SEED:-1}
seeds=${SEEDS:-5}
repeats=${REPEATS:-3}
venv=${VENV:-$repo/.venv-bench}
out=${OUT:-$repo/benchmarks/isolation-result.md}

fail() { echo "isolation.sh: error: $*" >&2; exit 1; }
step() { echo "[isolation] $*" >&2; }

if [[ -n "${CARDWATCH:-}" ]]; then
  bin=$CARDWATCH
  [[ -x "$bin" ]] || fail "CARDWATCH=$bin is not an executable file"
else
  command -v swift >/dev/null || fail "swift is not on PATH (or set CARDWATCH to a release binary)"
  step "swift build -c release --product cardwatch --scratch-path .build-peers"
  mkdir -p .build-peers
  if ! swift build -c release --product cardwatch --scratch-path .build-peers >.build-peers/isolation-build.log 2>&1; then
    tail -40 .build-peers/isolation-build.log >&2
    fail "release build failed (the end of .build-peers/isolation-build.log is above)"
  fi
  bin=$repo/.build-peers/release/cardwatch
fi

command -v python3 >/dev/null || fail "python3 is not on PATH"
if [[ ! -x "$venv/bin/python" ]]; then
  step "creating $venv"
  python3 -m venv "$venv" || fail "python3 -m venv $venv failed (Debian: apt-get install python3-venv)"
fi
if ! "$venv/bin/python" -c 'import sklearn, numpy' 2>/dev/null; then
  step "pip install scikit-learn numpy (into $venv)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check scikit-learn numpy threadpoolctl \
    || fail "pip install into $venv failed (is PyPI reachable?)"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
step "cardwatch generate --days $days --cards $cards --seed $seed"
"$bin" generate --days "$days" --cards "$cards" --seed "$seed" --quiet --out "$tmp/history.jsonl" || fail "generate failed"
step "cardwatch features"
"$bin" features --in "$tmp/history.jsonl" --out "$tmp/table.csv" --quiet || fail "features failed"

env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$venv/bin/python" "$repo/benchmarks/isolation.py" \
  --cardwatch "$bin" --table "$tmp/table.csv" --workdir "$tmp" --out "$out" --seeds "$seeds" --repeats "$repeats" \
  --train-from 2026-01-01 --train-to 2026-01-22 --test-from 2026-01-22 --test-to 2026-01-31 \
  --world "cardwatch generate --days $days --cards $cards --seed $seed, then cardwatch features" ${FEATURE_CHECK:+--feature-check}
step "report in ${out#"$repo"/}"
