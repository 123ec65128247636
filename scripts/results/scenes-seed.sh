#!/usr/bin/env bash
# Item 2 again with another seed (initial weights, data order, augmentation, patch dropout): runs
# the given variants of scripts/results/scenes.sh for fixed step counts, e.g. the ones that
# script calibrated, so a second seed trains exactly as long as the first.
# Usage: SEED=1 scripts/results/scenes-seed.sh clip:1163 flip:1367 siglip:1133
#   GLIMPSE (default: node dist/src/cli/main.js), RUNS (default runs/results), SEED (default 1)
set -euo pipefail
GLIMPSE=${GLIMPSE:-node dist/src/cli/main.js}
RUNS=${RUNS:-runs/results}
SEED=${SEED:-1}
load() { uptime | sed 's/.*load/load/' || true; }
base=(--config configs/scenes-clip.yaml --progress lines --checkpoint.every 0 --data.workers 1
  --data.val_options.scenes.size 32 --data.val_options.scenes.length 512 --seed "$SEED")
declare -A variant=([clip]='' [siglip]='--task siglip --model.custom.family siglip' [flip]='--patch_dropout 0.5')
for arg in "$@"; do
  name=${arg%%:*} steps=${arg##*:}
  [ -n "${variant[$name]+x}" ] || { echo "unknown variant '$name' (clip, siglip, flip)" >&2; exit 1; }
  log="$RUNS/$name-seed$SEED.log"
  echo "# $name seed $SEED: $steps steps, start $(date -u +%H:%M:%S) $(load)" > "$log"
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  $GLIMPSE train "${base[@]}" ${variant[$name]} --out "$RUNS/$name-seed$SEED" --steps "$steps" \
    --optim.warmup_steps $(( steps / 20 )) --eval.every $(( (steps + 3) / 4 )) --json < /dev/null >> "$log" 2>&1
  echo "# $name seed $SEED: end $(date -u +%H:%M:%S), wall $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}") s $(load)" >> "$log"
done
