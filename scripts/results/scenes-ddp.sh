#!/usr/bin/env bash
# Item 5: the scenes CLIP of item 2 (configs/scenes-clip.yaml, seed 0, the 1163 steps its time
# budget held) trained by 2 data-parallel ranks (glimpse launch) and by 1 process, back to back,
# at the same global batch of 64: the same recipe should give the same model, up to float noise.
# Usage: scripts/results/scenes-ddp.sh [steps]
#   GLIMPSE (default: node dist/src/cli/main.js), RUNS (default runs/results)
set -euo pipefail
GLIMPSE=${GLIMPSE:-node dist/src/cli/main.js}
RUNS=${RUNS:-runs/results}
STEPS=${1:-1163}
load() { uptime | sed 's/.*load/load/' || true; }
base=(--config configs/scenes-clip.yaml --progress lines --checkpoint.every 0 --data.workers 1
  --data.val_options.scenes.size 32 --data.val_options.scenes.length 512 --seed 0 --steps "$STEPS"
  --optim.warmup_steps $(( STEPS / 20 )) --eval.every $(( (STEPS + 3) / 4 )) --json)
mkdir -p "$RUNS"
for ranks in 2 1; do
  name="clip-ddp$ranks"
  log="$RUNS/$name.log"
  echo "# $ranks rank(s): start $(date -u +%H:%M:%S) $(load)" > "$log"
  t0=$(date +%s.%N)
  if [ "$ranks" = 1 ]; then
    $GLIMPSE train "${base[@]}" --out "$RUNS/$name" < /dev/null >> "$log" 2>&1
  else
    $GLIMPSE launch -n "$ranks" -- train "${base[@]}" --out "$RUNS/$name" < /dev/null >> "$log" 2>&1
  fi
  echo "# $ranks rank(s): end $(date -u +%H:%M:%S), wall $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}") s $(load)" >> "$log"
done
