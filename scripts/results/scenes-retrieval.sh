#!/usr/bin/env bash
# Image <-> text retrieval of trained scenes models on 512 scenes of the val split (compositions
# seen in training, 1-3 objects, 501 distinct captions among the 512), rendered at 32 pixels as in
# training. The test split's retrieval (in the training logs) is bounded by its duplicate captions:
# 512 single-object scenes carry only 136 distinct captions, so most captions fit several images.
# The CLI cannot set the scenes' size (`glimpse eval retrieval --data scenes:val` renders 64 pixels
# and the processor downsizes them), hence the library call.
# Usage: scripts/results/scenes-retrieval.sh MODEL_DIR...   (DIST: the compiled tree, default dist)
set -euo pipefail
DIST=${DIST:-dist}
node --input-type=module - "$DIST" "$@" <<'JS'
import path from 'node:path';
const [dist, ...models] = process.argv.slice(2);
const { ScenesDataset } = await import(path.resolve(dist, 'src/data/scenes.js'));
const { evaluateRetrieval } = await import(path.resolve(dist, 'src/eval/retrieval.js'));
const val = new ScenesDataset('val', { size: 32, length: 512 });
for (const m of models) {
  const r = await evaluateRetrieval(path.resolve(m), val, { batchSize: 128 });
  const pick = (x) => Object.fromEntries([1, 5, 10].map((k) => [`R@${k}`, x.recall[k]]));
  console.log(JSON.stringify({ model: m, dataset: r.dataset, i2t: pick(r.imageToText), t2i: pick(r.textToImage) }));
}
JS
