#!/usr/bin/env bash
# Issue 6's Fashion-MNIST result (docs/RESULTS.md): MAE pretraining on the training images for
# PRE_S seconds of training steps, then (a) linear probes of the frozen encoder (final [CLS] token
# and mean of the patch tokens) and (b) fine-tuning for FT_S seconds; against a ViT of the same
# size trained from scratch for PRE_S + FT_S seconds with the fine-tuning recipe (no layer-wise
# decay): the same compute, as wall time on the same machine, the runs one after another.
# Each training lasts time_budget_s seconds of training steps; its cosine follows those seconds.
#   GLIMPSE (default: node dist/src/cli/main.js), RUNS (default runs/results),
#   PRE_S (default 900), FT_S (default 900), PROBES (default 1; 0 skips the linear probes, 20-25
#   minutes each); further arguments are overrides for every training.
set -euo pipefail
GLIMPSE=${GLIMPSE:-node dist/src/cli/main.js}
RUNS=${RUNS:-runs/results}
PRE_S=${PRE_S:-900}
FT_S=${FT_S:-900}
PROBES=${PROBES:-1}
load() { uptime | sed 's/.*load/load/' || true; }
stamp() { echo "# $1 $(date -u +%H:%M:%S) $(load)"; }
common=(--progress lines --json --checkpoint.every 0)
encoder='{family: vit, image_size: 28, patch_size: 4, width: 128, layers: 6, heads: 4}'

stamp "mae pretraining ($PRE_S s): start"
$GLIMPSE train --config configs/fashion-mnist-mae.yaml --time_budget_s "$PRE_S" --out "$RUNS/fmnist-mae" "${common[@]}" "$@" < /dev/null
stamp "mae pretraining: end"
for pooling in cls mean; do
  [ "$PROBES" = 0 ] && break
  $GLIMPSE eval linear-probe --model "$RUNS/fmnist-mae/model" --data fashion-mnist --pooling "$pooling" --json
done
stamp "fine-tuning ($FT_S s): start"
$GLIMPSE train --config configs/fashion-mnist-mae-finetune.yaml --model "$RUNS/fmnist-mae/model" --time_budget_s "$FT_S" \
  --out "$RUNS/fmnist-mae-finetune" "${common[@]}" "$@" < /dev/null
stamp "fine-tuning: end; from scratch ($(( PRE_S + FT_S )) s): start"
$GLIMPSE train --config configs/fashion-mnist-mae-finetune.yaml --model "{custom: $encoder}" --optim.layer_decay 1 \
  --time_budget_s $(( PRE_S + FT_S )) --out "$RUNS/fmnist-vit-scratch" "${common[@]}" "$@" < /dev/null
stamp "from scratch: end"
