#!/usr/bin/env bash
# Item 1 of docs/RESULTS.md: a ViT trained from scratch on Fashion-MNIST within 30 minutes, in two
# stages as FLIP trains: 26 minutes of steps with 70% of each image's patches dropped
# (configs/fashion-mnist-vit-30min.yaml), then 2.5 minutes of unmasked tuning
# (configs/fashion-mnist-vit-unmasked.yaml). Each stage's cosine follows the seconds of its
# training steps and ends with its time_budget_s. Test accuracy on all 10000 test images at every
# eval.every steps and at the end of each stage; the wall time printed last covers both stages.
#   GLIMPSE (default: node dist/src/cli/main.js), RUNS (default runs/results), SEED (default 0:
#   the initial weights, data order, augmentation and patch dropout of both stages)
#   TUNE_S (default 150): stage 2's seconds of training steps
# Further arguments are overrides for stage 1 (e.g. --time_budget_s 3300 for a longer run).
set -euo pipefail
GLIMPSE=${GLIMPSE:-node dist/src/cli/main.js}
RUNS=${RUNS:-runs/results}
SEED=${SEED:-0}
TUNE_S=${TUNE_S:-150}
load() { uptime | sed 's/.*load/load/' || true; }
echo "# fmnist-vit: start $(date -u +%H:%M:%S) $(load)"
t0=$(date +%s)
$GLIMPSE train --config configs/fashion-mnist-vit-30min.yaml --out "$RUNS/fmnist-vit" --seed "$SEED" --progress lines --json "$@" < /dev/null
echo "# fmnist-vit: stage 1 $(( $(date +%s) - t0 )) s, $(date -u +%H:%M:%S) $(load)"
$GLIMPSE train --config configs/fashion-mnist-vit-unmasked.yaml --model "$RUNS/fmnist-vit/model" \
  --out "$RUNS/fmnist-vit-unmasked" --seed "$SEED" --time_budget_s "$TUNE_S" --progress lines --json < /dev/null
echo "# fmnist-vit: $(( $(date +%s) - t0 )) s in all, end $(date -u +%H:%M:%S) $(load)"
