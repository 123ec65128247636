#!/usr/bin/env bash
# Short tuning runs of the Fashion-MNIST ViT (docs/RESULTS.md, item 1): each variant trains a fixed
# number of samples with warm-up + cosine over its own length and evaluates on 2000 test images.
# Usage: scripts/results/fmnist-vit-tune.sh NAME [config overrides...]
#   e.g. scripts/results/fmnist-vit-tune.sh p7-w128-d6 --model.custom.patch_size 7 --model.custom.width 128
# GLIMPSE (default: node dist/src/cli/main.js) is the CLI; RUNS (default runs/results) the output root.
set -euo pipefail
name=$1; shift
GLIMPSE=${GLIMPSE:-node dist/src/cli/main.js}
RUNS=${RUNS:-runs/results}
echo "# $name  start $(date -u +%H:%M:%S)  $(uptime | sed 's/.*load/load/')"
$GLIMPSE train --config configs/fashion-mnist-vit.yaml --out "$RUNS/tune-$name" --epochs null \
  --eval.every 0 --eval.max_samples 2000 --checkpoint.every 0 --log_every 25 --progress lines "$@"
echo "# $name  end $(date -u +%H:%M:%S)  $(uptime | sed 's/.*load/load/')"
