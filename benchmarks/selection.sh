#!/usr/bin/env bash
# Issue 15, model selection: (d) the DESIGN.md budget "training on 1.75 M transactions ≤ 60 s"
# with the model search on (default `cardwatch train --data`, read + validate + features +
# search + calibration + evaluation; 20,000 cards × 28 days, seed 3, as
# benchmarks/model.sh), median of RUNS runs; and the default world (30 days × 500 cards,
# seed 1, train days 1–21, test 22–30, as scripts/cli-smoke.sh): test AP / AUC / Brier of the
# default train, of `--no-tuning`, and (with BEFORE=<an older cardwatch binary>) of that
# binary's default train.
#
#   benchmarks/selection.sh                                   # release build of this checkout
#   CARDWATCH=/path/to/cardwatch BEFORE=/path/to/main/cardwatch RUNS=3 benchmarks/selection.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
if [[ -n "${CARDWATCH:-}" ]]; then bin=$CARDWATCH; else
  swift build -c release --product cardwatch >/dev/null
  bin=$(swift build -c release --show-bin-path)/cardwatch
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
summary() {
  python3 - "$1" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
s = m.get("search") or {}
line = "AUC %.4f  AP %.4f  Brier %s  %s, %d trees" % (m["roc_auc"], m["average_precision"],
    "%.5f" % m["brier_score"] if m.get("brier_score") is not None else "—", m.get("model_kind", "gbdt"), m["trees"])
if s:
    line += "  search %d/%d candidates, %.1f reference s, candidates on %d rows" % (
        s["tried"], s["listed"], s["spent_seconds"], s["candidate_rows"])
    line += "; candidate wall s " + " ".join("%.1f" % c["wall_seconds"] for c in s["candidates"])
if m.get("calibration"):
    line += "; calibration " + m["calibration"]["method"]
print(line + "; training_seconds %.1f" % m["training_seconds"])
PY
}

echo
echo "## default world: train 2026-01-01..22, test 2026-01-22..31"
"$bin" generate --days 30 --seed 1 --quiet --out "$tmp/h.jsonl"
split=(--train-from 2026-01-01 --train-to 2026-01-22 --test-from 2026-01-22 --test-to 2026-01-31 --no-register --json)
"$bin" train --data "$tmp/h.jsonl" "${split[@]}" > "$tmp/w.json"
echo "default train:       $(summary "$tmp/w.json")"
"$bin" train --data "$tmp/h.jsonl" "${split[@]}" --no-tuning > "$tmp/w1.json"
echo "--no-tuning:         $(summary "$tmp/w1.json")"
if [[ -n "${BEFORE:-}" ]]; then
  "$BEFORE" train --data "$tmp/h.jsonl" "${split[@]}" > "$tmp/w0.json"
  echo "before (\$BEFORE):    $(summary "$tmp/w0.json")"
fi

echo
"$bin" generate --days 28 --cards 20000 --seed 3 --quiet --out "$tmp/big.jsonl"
n=$(wc -l < "$tmp/big.jsonl")
echo "## cardwatch train --data <$n transactions> --test-days 1 --delay-days 0 (default: with the search), $runs runs"
for i in $(seq "$runs"); do
  s=$(date +%s.%N)
  "$bin" train --data "$tmp/big.jsonl" --test-days 1 --delay-days 0 --no-register --json > "$tmp/m$i.json"
  e=$(date +%s.%N)
  echo "$e - $s" | bc -l | tee -a "$tmp/walls"
  echo "  run $i: $(summary "$tmp/m$i.json")" >&2
done > /dev/null
echo "wall times: $(xargs < "$tmp/walls")"
median < "$tmp/walls" | xargs printf "wall time, median: %.1f s\n"
