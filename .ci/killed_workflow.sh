#!/usr/bin/env bash
# A workflow killed outright (SIGKILL to Snakemake and every job it started, as a node failure or
# an out-of-memory kill would do) in the middle of a training job, then run again, ends with the
# same numbers as an uninterrupted run.
#
# Runs the smoke Table 1 (config/smoke.yaml, one seed, three methods: the noisy baseline, SOSELETO
# and fine-tuning, which reads the baseline's checkpoint) twice, each in its own temporary working
# directory (the results/ of this checkout are not touched): once straight through, once killed as
# soon as a training job has saved its first epoch, then unlocked and rerun. The tables and the
# runs' numbers (metrics without timings, the alpha table) must be equal.
#   .ci/killed_workflow.sh          (about 2 minutes on 2 cores)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/killed_workflow.XXXXXX")"
sid=""

# the killed run's processes, by id: everything in the session that setsid started
session_pids() { [ -n "$sid" ] && ps -eo pid=,sid= | awk -v s="$sid" '$2 == s {print $1}' || true; }
cleanup() {
    local pids
    pids="$(session_pids)"
    [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
export MPLBACKEND=Agg
start=$SECONDS

cat > "$work/killed.yaml" <<'YAML'
noisy:
  seeds: [0]
  methods: [noisy_baseline, soseleto, finetune]
YAML
runs="results/noisy/cifar10-generated/noise0.5"
table="results/tables/cifar10-generated/table1.csv"
smk() {  # smk DIR [options]: the target of this check in working directory DIR
    local dir="$1"
    shift
    snakemake "$table" -s "$repo/Snakefile" --directory "$dir" --cores 2 \
        --configfile "$repo/config/smoke.yaml" "$work/killed.yaml" "$@"
}
export -f smk
export repo work table

echo "== uninterrupted run =="
smk "$work/straight" --quiet all > "$work/straight.log" 2>&1 || { cat "$work/straight.log"; exit 1; }
echo "done after $((SECONDS - start)) s"

echo "== run killed with SIGKILL (Snakemake and its jobs) once a training job has saved an epoch =="
setsid bash -c 'smk "$work/killed" --quiet all' > "$work/killed.log" 2>&1 &
sid=$!  # setsid in a background job of a script: the child leads its own session (sid = its pid)
disown  # its death by SIGKILL is the point of this check, not news for the log
deadline=$((SECONDS + 150))
resume=""
while [ -z "$resume" ]; do
    resume="$(find "$work/killed/$runs" -name 'checkpoint.pt.resume' 2>/dev/null | head -n 1 || true)"
    if [ -z "$(session_pids)" ] || [ $SECONDS -gt $deadline ]; then
        cat "$work/killed.log"
        echo "FAIL: no training job saved an epoch before the run ended" >&2
        exit 1
    fi
    [ -z "$resume" ] && sleep 0.1
done
job="$(dirname "${resume#"$work/killed/$runs/"}")"  # e.g. soseleto/seed0
kill -KILL $(session_pids)
while [ -n "$(session_pids)" ]; do sleep 0.1; done
echo "killed while $job trained; left behind: $(cd "$work/killed/$runs/$job" && ls -A | tr '\n' ' ')"
[ ! -e "$work/killed/$table" ] || { echo "FAIL: the table exists before the rerun" >&2; exit 1; }

echo "== rerun (unlock, rerun incomplete jobs) =="
smk "$work/killed" --unlock > /dev/null 2>&1
smk "$work/killed" --rerun-incomplete --quiet all > "$work/rerun.log" 2>&1 || { cat "$work/rerun.log"; exit 1; }
log="$work/killed/logs/noisy/cifar10-generated/noise0.5/${job%/seed*}/seed${job##*/seed}.log"
grep -q "resumed from .*checkpoint.pt.resume at epoch 2" "$log" || {
    cat "$log"
    echo "FAIL: the rerun of $job did not resume from its saved epoch" >&2
    exit 1
}
echo "$job resumed: $(grep -o 'resumed from .*' "$log")"

echo "== the numbers of both runs =="
python - "$work/straight" "$work/killed" "$table" "$runs" <<'PY'
import json
import sys
from pathlib import Path

import pandas as pd

straight, killed, table, runs = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]


def numbers(metrics: Path) -> dict:
    """A run's metrics without what depends on the clock or the machine."""
    m = json.loads(metrics.read_text())
    m.pop("provenance")
    m.pop("seconds_per_epoch")
    m["history"] = [{k: v for k, v in h.items() if k != "seconds"} for h in m["history"]]
    return m


a, b = pd.read_csv(straight / table), pd.read_csv(killed / table)
pd.testing.assert_frame_equal(a, b, check_exact=True)
files = sorted(p.relative_to(straight) for p in (straight / runs).rglob("*") if p.name in ("metrics.json", "alpha.csv"))
assert len(files) == 4, files  # three metrics, one alpha table
for f in files:
    if f.suffix == ".json":
        assert numbers(straight / f) == numbers(killed / f), f
    else:
        pd.testing.assert_frame_equal(pd.read_csv(straight / f), pd.read_csv(killed / f), check_exact=True)
leftover = sorted(p.name for p in (killed / runs).rglob("*.resume*"))
assert not leftover, f"resume files left after the rerun: {leftover}"
print(a.to_string(index=False))
print(f"equal: {table} and {len(files)} run files; no resume file left")
PY
echo "killed workflow check passed in $((SECONDS - start)) s"
