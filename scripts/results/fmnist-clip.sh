#!/usr/bin/env bash
# Item 3 of docs/RESULTS.md: CLIP on Fashion-MNIST's training images with captions made from the
# class names and three templates (configs/fashion-mnist-clip.yaml), trained for BUDGET_S seconds
# (a 30-step calibration run measures the seconds per step here and now, and the step count is
# sized to the budget), then evaluated zero-shot on all 10000 test images with three templates no
# training caption uses.
#   GLIMPSE (default: node dist/src/cli/main.js), RUNS (default runs/results), BUDGET_S (default 300)
set -euo pipefail
GLIMPSE=${GLIMPSE:-node dist/src/cli/main.js}
RUNS=${RUNS:-runs/results}
BUDGET_S=${BUDGET_S:-300}
load() { uptime | sed 's/.*load/load/' || true; }
cfg=(--config configs/fashion-mnist-clip.yaml --epochs null --checkpoint.every 0 --data.workers 1)

cal="$RUNS/calibrate-fmnist-clip"
$GLIMPSE train "${cfg[@]}" --out "$cal" --steps 30 --optim.warmup_steps 0 --log_every 1 --data.val null --progress none < /dev/null > /dev/null
steps=$(node -e '
  const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
  const t = rows.filter((r) => r.step >= 5).map((r) => r.elapsed_s);
  const d = t.slice(1).map((x, i) => x - t[i]).sort((a, b) => a - b);  // median step time
  console.log(Math.round(process.argv[2] / d[d.length >> 1]));' "$cal/metrics.jsonl" "$BUDGET_S")
echo "# fmnist-clip: $steps steps, start $(date -u +%H:%M:%S) $(load)"
t0=$(date +%s)
$GLIMPSE train "${cfg[@]}" --out "$RUNS/fmnist-clip" --steps "$steps" --optim.warmup_steps $(( steps / 10 )) \
  --eval.every $(( (steps + 3) / 4 )) --progress lines --json < /dev/null
echo "# fmnist-clip: trained in $(( $(date +%s) - t0 )) s, end $(date -u +%H:%M:%S) $(load)"
# The whole test set, with the held-out templates (the periodic evaluations above use 2000 images).
$GLIMPSE eval zeroshot --model "$RUNS/fmnist-clip/model" --data fashion-mnist:test \
  --template 'an image of a {}.' --template 'a {} on a plain background.' --template 'a grey picture of one {}.' --json
# For comparison: the training templates themselves.
$GLIMPSE eval zeroshot --model "$RUNS/fmnist-clip/model" --data fashion-mnist:test \
  --template 'a photo of a {}.' --template 'a {}.' --template 'a picture of a {}, an item of clothing.' --json
