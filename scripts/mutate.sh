#!/usr/bin/env bash
# Mutation testing of the modules whose mistakes give a wrong number with exit 0:
#   scripts/mutate.sh sweep     config/task.py + sweep/stopping.py against their in-process tests
#   scripts/mutate.sh tabular   data/sources/tabular_prep.py against the table tests
# Runs mutmut in a copy of the tree (a mutated module must never be imported by anything
# else running here), one child at a time (two children gave unstable results), and prints
# the survivors. The settings per target are scripts/mutation/<target>.cfg.
set -euo pipefail
target="${1:?usage: scripts/mutate.sh sweep|tabular}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cfg="$root/scripts/mutation/$target.cfg"
[ -f "$cfg" ] || { echo "error: no scripts/mutation/$target.cfg — use sweep or tabular" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$root/src" "$root/tests" "$root/configs" "$root/pyproject.toml" "$work/"
cp "$cfg" "$work/setup.cfg"
cd "$work"
OMP_NUM_THREADS=1 "$root/.venv/bin/mutmut" run --max-children 1
"$root/.venv/bin/mutmut" results
