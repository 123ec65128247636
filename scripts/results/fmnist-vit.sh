#!/usr/bin/env bash
# Item 1 of docs/RESULTS.md: a ViT trained from scratch on Fashion-MNIST within a 30-minute budget
# (configs/fashion-mnist-vit-30min.yaml: time_budget_s sizes the run from the median time of its
# first steps, so the cosine ends with the budget), test accuracy on all 10000 test images at
# every eval.every steps and at the end.
#   GLIMPSE (default: node dist/src/cli/main.js), RUNS (default runs/results)
# Further arguments are config overrides (e.g. --time_budget_s 600 for a shorter run).
set -euo pipefail
GLIMPSE=${GLIMPSE:-node dist/src/cli/main.js}
RUNS=${RUNS:-runs/results}
load() { uptime | sed 's/.*load/load/' || true; }
echo "# fmnist-vit: start $(date -u +%H:%M:%S) $(load)"
t0=$(date +%s)
$GLIMPSE train --config configs/fashion-mnist-vit-30min.yaml --out "$RUNS/fmnist-vit" --progress lines --json "$@" < /dev/null
echo "# fmnist-vit: $(( $(date +%s) - t0 )) s, end $(date -u +%H:%M:%S) $(load)"
