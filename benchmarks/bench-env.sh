# Sourced by the issue-15 benchmarks (worlds.sh, handbook.sh, isolation.sh): the CLI in $bin and the
# Python environment in $py, the same way benchmarks/peers.sh sets them up.
#
#   CARDWATCH=/path/to/cardwatch   use that binary (else: a release build into .build-peers)
#   VENV=DIR                       the Python environment (default .venv-bench: xgboost,
#                                  scikit-learn, numpy, pandas, threadpoolctl from PyPI)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
venv=${VENV:-$repo/.venv-bench}
me=$(basename "$0")

fail() { echo "$me: error: $*" >&2; exit 1; }
step() { echo "[${me%.sh}] $*" >&2; }

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
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

command -v python3 >/dev/null || fail "python3 is not on PATH"
if [[ ! -x "$venv/bin/python" ]]; then
  step "creating $venv"
  python3 -m venv "$venv" || fail "python3 -m venv $venv failed (Debian: apt-get install python3-venv)"
fi
if ! "$venv/bin/python" -c 'import xgboost, sklearn, numpy, pandas, threadpoolctl' 2>/dev/null; then
  step "pip install xgboost scikit-learn numpy pandas threadpoolctl (into $venv)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check xgboost scikit-learn numpy pandas threadpoolctl \
    || fail "pip install into $venv failed (is PyPI reachable?)"
fi
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (set on some machines, see NOTES.md) can slow numpy.
py() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$venv/bin/python" "$@"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cardwatch-${me%.sh}.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
