#!/usr/bin/env bash
# Item 8: OadTR on the built-in synthetic feature streams (configs/oad-synthetic-small.yaml, made
# harder: 10 action classes, feature noise 3) against its two ablations, each for the same seconds
# of training: the encoder alone (decoder_layers 0: no anticipation) and a per-frame classifier
# (window 1: the same encoder reading only the current chunk). Per-frame mAP / mcAP on the test
# streams and the anticipation accuracy at each future step.
# Usage: SEEDS="0 1" BUDGET_S=120 [VIDEOS=32] scripts/results/oad-synthetic.sh (VIDEOS: training streams)
#   GLIMPSE (default: node dist/src/cli/main.js), RUNS (default runs/results)
set -euo pipefail
GLIMPSE=${GLIMPSE:-node dist/src/cli/main.js}
RUNS=${RUNS:-runs/results}
SEEDS=${SEEDS:-0 1}
BUDGET_S=${BUDGET_S:-120}
VIDEOS=${VIDEOS:-32}
load() { uptime | sed 's/.*load/load/' || true; }
base=(--config configs/oad-synthetic-small.yaml --progress lines --time_budget_s "$BUDGET_S"
  --data.options.oadSynthetic.classes 10 --data.options.oadSynthetic.noise 3 --data.options.oadSynthetic.videos "$VIDEOS" --json)
declare -A variant=([oadtr]='' [encoder-only]='--model.custom.decoder_layers 0' [per-frame]='--model.custom.window 1')
mkdir -p "$RUNS"
for seed in $SEEDS; do
  for name in oadtr encoder-only per-frame; do
    log="$RUNS/oad-$name-seed$seed.log"
    echo "# $name seed $seed: start $(date -u +%H:%M:%S) $(load)" > "$log"
    # shellcheck disable=SC2086
    $GLIMPSE train "${base[@]}" ${variant[$name]} --seed "$seed" --out "$RUNS/oad-$name-seed$seed" < /dev/null >> "$log" 2>&1
    echo "# $name seed $seed: end $(date -u +%H:%M:%S) $(load)" >> "$log"
  done
done
