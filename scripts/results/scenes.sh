#!/usr/bin/env bash
# Items 2 and 4 of docs/RESULTS.md, on the built-in scenes (32-pixel images, configs/scenes-clip.yaml):
#
#   phase 1  clip, siglip, flip (CLIP with 50% patch dropout) and noisy (CLIP on a 10000-scene
#            training set with 30% of its captions swapped for another scene's), each trained for
#            BUDGET_S seconds of wall time: a short calibration run measures each one's seconds per
#            step (median), and its step count is BUDGET_S / that (so the cosine schedule ends with the budget).
#   phase 2  lit: the clip run's image tower locked, a fresh text tower trained for BUDGET_S;
#            filter: the clip run's model scores the noisy set's pairs, the best 70% are kept
#            (precision/recall of keeping clean pairs), and `filtered` trains on them for the
#            noisy run's number of steps (same steps, same batch size).
#
# Every run evaluates on scenes:test (colour-shape pairs never seen in training, 512 scenes):
# zero-shot top-1 with the templates 'a {}.' and 'a photo of a {}.', and image <-> text retrieval.
#
# Usage: scripts/results/scenes.sh        (from the repository root, after npm run build)
#   GLIMPSE   the CLI (default: node dist/src/cli/main.js); DIST its compiled tree (default dist)
#   RUNS      output root (default runs/results)
#   BUDGET_S  seconds of training per run (default 240)
#   PARALLEL  1: run each phase's trainings at the same time (on a machine with cores to spare;
#             set GLIMPSE_NUM_THREADS so they do not oversubscribe it); default 0: one after another
set -euo pipefail
GLIMPSE=${GLIMPSE:-node dist/src/cli/main.js}
DIST=${DIST:-dist}
RUNS=${RUNS:-runs/results}
BUDGET_S=${BUDGET_S:-240}
PARALLEL=${PARALLEL:-0}
NOISY_LENGTH=10000
mkdir -p "$RUNS"
load() { uptime | sed 's/.*load/load/' || true; }

# data.val_options replaces data.options' `scenes` object as a whole (a shallow merge), so the
# evaluation set repeats size 32 and the clean captions explicitly.
base=(--config configs/scenes-clip.yaml --progress lines --checkpoint.every 0 --data.workers 1
  --data.val_options.scenes.size 32 --data.val_options.scenes.length 512 --data.val_options.scenes.corruptCaptions 0)
declare -A variant=(
  [clip]=''
  [siglip]='--task siglip --model.custom.family siglip'
  [flip]='--patch_dropout 0.5'
  [noisy]="--data.options.scenes.corruptCaptions 0.3 --data.options.scenes.length $NOISY_LENGTH"
  [lit]="--model.custom null --model.name $RUNS/clip/model --lock_image true --optim.lr 5e-4"
)

# Seconds per step of a variant: the median step time of steps 6..30 of a 30-step run without
# evaluation (the median, so that a moment of load from elsewhere on the machine does not skew it).
seconds_per_step() {
  local name=$1 dir="$RUNS/calibrate-$1"
  # shellcheck disable=SC2086
  $GLIMPSE train "${base[@]}" ${variant[$name]} --out "$dir" --steps 30 --optim.warmup_steps 0 --log_every 1 \
    --data.val null --progress none < /dev/null > /dev/null
  node -e '
    const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
    const t = rows.filter((r) => r.step >= 5).map((r) => r.elapsed_s);
    const d = t.slice(1).map((x, i) => x - t[i]).sort((a, b) => a - b);
    console.log(d[d.length >> 1].toFixed(4));' "$dir/metrics.jsonl"
}

# Trains a variant for a given number of steps, evaluating four times; logs to $RUNS/<name>.log.
run() {
  local name=$1 steps=$2; shift 2
  local every=$(( (steps + 3) / 4 ))
  echo "# $name: $steps steps, start $(date -u +%H:%M:%S) $(load)" > "$RUNS/$name.log"
  local t0; t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  $GLIMPSE train "${base[@]}" ${variant[$name]:-} "$@" --out "$RUNS/$name" --steps "$steps" \
    --optim.warmup_steps $(( steps / 20 )) --eval.every "$every" --json < /dev/null >> "$RUNS/$name.log" 2>&1
  echo "# $name: end $(date -u +%H:%M:%S), wall $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}") s $(load)" >> "$RUNS/$name.log"
}

steps_for() { node -e 'console.log(Math.max(20, Math.round(process.argv[1] / process.argv[2])))' "$BUDGET_S" "$1"; }

phase() {  # runs "name steps [args...]" lines, together when PARALLEL=1
  local pids=()
  while read -r line; do
    [ -z "$line" ] && continue
    # shellcheck disable=SC2086
    if [ "$PARALLEL" = 1 ]; then run $line & pids+=($!); else run $line; fi
  done
  for p in "${pids[@]}"; do wait "$p"; done
}

echo "calibrating ($(load))"
declare -A sps steps
if [ "$PARALLEL" = 1 ]; then
  for n in clip siglip flip noisy; do (seconds_per_step $n > "$RUNS/calibrate-$n.txt") & done; wait
  for n in clip siglip flip noisy; do sps[$n]=$(cat "$RUNS/calibrate-$n.txt"); done
else
  for n in clip siglip flip noisy; do sps[$n]=$(seconds_per_step $n); done
fi
for n in clip siglip flip noisy; do steps[$n]=$(steps_for "${sps[$n]}"); echo "  $n: ${sps[$n]} s/step -> ${steps[$n]} steps"; done

phase <<EOF
clip ${steps[clip]}
siglip ${steps[siglip]}
flip ${steps[flip]}
noisy ${steps[noisy]}
EOF

# Phase 2. LiT's steps are cheaper (no image-tower backward): calibrated on its own.
filter_and_train() {
  echo "# filter: start $(date -u +%H:%M:%S) $(load)" > "$RUNS/filter.log"
  node --input-type=module - "$DIST" "$RUNS" "$NOISY_LENGTH" >> "$RUNS/filter.log" 2>&1 <<'JS'
import path from 'node:path';
const [dist, runs, length] = process.argv.slice(2);
const imp = (p) => import(path.resolve(dist, p));
const { ScenesDataset } = await imp('src/data/scenes.js');
const { filterDataset } = await imp('src/eval/filter.js');
const { formatFilter } = await imp('src/cli/filter.js');
// The noisy run's training set, exactly: 32-pixel scenes, 30% of the captions swapped.
const noisy = new ScenesDataset('train', { size: 32, length: Number(length), corruptCaptions: 0.3 });
const r = await filterDataset(path.join(runs, 'clip', 'model'), noisy, { keepFraction: 0.7, out: path.join(runs, 'filtered-data'), batchSize: 128 });
console.log(formatFilter(r, false));
console.log(formatFilter(r, true));
JS
  echo "# filter: end $(date -u +%H:%M:%S) $(load)" >> "$RUNS/filter.log"
  variant[filtered]="--data.train $RUNS/filtered-data/shard-000000.tar"
  run filtered "${steps[noisy]}"
}
sps[lit]=$(seconds_per_step lit); steps[lit]=$(steps_for "${sps[lit]}"); echo "  lit: ${sps[lit]} s/step -> ${steps[lit]} steps"
if [ "$PARALLEL" = 1 ]; then
  run lit "${steps[lit]}" & lit_pid=$!
  filter_and_train
  wait $lit_pid
else
  run lit "${steps[lit]}"
  filter_and_train
fi
echo "done $(date -u +%H:%M:%S)"
grep -h '^#\|^{' "$RUNS"/{clip,siglip,flip,noisy,lit,filter,filtered}.log
