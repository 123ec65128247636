import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bestRank, openClipRetrievalNames, rankMetrics, retrievalMetrics, retrievalMetricsOfEmbeddings } from '../../src/eval/retrieval.js';
import { classificationMetrics } from '../../src/eval/classification.js';
import { tensor } from '../../src/tensor/tensor.js';
import { rng } from '../helpers.js';

/** Brute force: sort candidates by (score desc, index asc), the best position of a target, 1-based. */
function referenceRank(scores: number[], targets: number[]): number {
  const order = scores.map((s, j) => [s, j] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).map(([, j]) => j);
  return Math.min(...targets.map((t) => order.indexOf(t))) + 1;
}

/** numpy: floor(median(ranks0)) + 1, the median of an even count being the mean of the middle two. */
function referenceMedian(ranks: number[]): number {
  const r = ranks.map((x) => x - 1).sort((a, b) => a - b);
  const n = r.length;
  const med = n % 2 ? r[(n - 1) / 2]! : (r[n / 2 - 1]! + r[n / 2]!) / 2;
  return Math.floor(med) + 1;
}

test('retrieval: a hand-built similarity matrix with known ranks', () => {
  // 3 images, 4 texts; texts 0, 1 describe image 0, text 2 image 1, text 3 image 2.
  const sim = [
    0.1, 0.9, 0.3, 0.5, // image 0: its best caption (1) is first -> rank 1
    0.8, 0.2, 0.4, 0.7, // image 1: its caption 2 is third -> rank 3
    0.5, 0.6, 0.6, 0.5, // image 2: caption 3 ties caption 0 at 0.5 and comes after it -> rank 4
  ];
  const m = retrievalMetrics(sim, 3, [0, 0, 1, 2]);
  assert.deepEqual([...m.imageToText.ranks], [1, 3, 4]);
  // Text 0 -> image 0 scores 0.1 of (0.1, 0.8, 0.5): 3; text 1: 0.9 first: 1; text 2 -> image 1: 0.4 of (0.3, 0.4, 0.6): 2;
  // text 3 -> image 2: 0.5 of (0.5, 0.7, 0.5), tied with image 0, which comes first: 3.
  assert.deepEqual([...m.textToImage.ranks], [3, 1, 2, 3]);
  assert.deepEqual(m.imageToText.recall, { 1: 1 / 3, 5: 1, 10: 1 });
  assert.equal(m.imageToText.meanRank, 8 / 3);
  assert.equal(m.imageToText.medianRank, 3);
  assert.equal(m.textToImage.meanRank, 9 / 4);
  assert.equal(m.textToImage.medianRank, 2); // 0-based ranks (0, 1, 2, 2): median 1.5, floored to 1, plus 1
  const names = openClipRetrievalNames(m);
  assert.deepEqual(Object.keys(names).sort(), ['image_to_text_R@1', 'image_to_text_R@10', 'image_to_text_R@5', 'image_to_text_mean_rank',
    'image_to_text_median_rank', 'text_to_image_R@1', 'text_to_image_R@10', 'text_to_image_R@5', 'text_to_image_mean_rank', 'text_to_image_median_rank']);
  assert.equal(names['text_to_image_R@1'], 0.25);
});

test('retrieval: random similarities against a brute-force sort, with ties and several captions per image', () => {
  const r = rng(11);
  for (let trial = 0; trial < 20; trial++) {
    const images = 1 + Math.floor(r() * 12);
    const textImage: number[] = [...Array(images).keys()];
    const extra = Math.floor(r() * 10);
    for (let k = 0; k < extra; k++) textImage.push(Math.floor(r() * images));
    const T = textImage.length;
    // Coarse values so that ties are common.
    const sim = Array.from({ length: images * T }, () => Math.round(r() * 6) / 6);
    const m = retrievalMetrics(sim, images, textImage, [1, 2, 5]);
    const i2t = Array.from({ length: images }, (_, i) => referenceRank(sim.slice(i * T, (i + 1) * T), textImage.flatMap((im, t) => (im === i ? [t] : []))));
    const t2i = Array.from({ length: T }, (_, t) => referenceRank(Array.from({ length: images }, (_, i) => sim[i * T + t]!), [textImage[t]!]));
    assert.deepEqual([...m.imageToText.ranks], i2t);
    assert.deepEqual([...m.textToImage.ranks], t2i);
    for (const [got, ranks] of [[m.imageToText, i2t], [m.textToImage, t2i]] as const) {
      assert.equal(got.medianRank, referenceMedian(ranks));
      assert.equal(got.meanRank, ranks.reduce((a, b) => a + b, 0) / ranks.length);
      for (const k of [1, 2, 5]) assert.equal(got.recall[k], ranks.filter((x) => x <= k).length / ranks.length);
    }
  }
});

test('retrieval: embeddings in row blocks give the matrix form\'s metrics; bad inputs are named', () => {
  const r = rng(3);
  const img = tensor(Array.from({ length: 7 * 5 }, () => r() - 0.5), { shape: [7, 5] });
  const txt = tensor(Array.from({ length: 9 * 5 }, () => r() - 0.5), { shape: [9, 5] });
  const textImage = [0, 1, 2, 3, 4, 5, 6, 2, 4];
  const sim = img.matmul(txt.transpose(0, 1)).toArray();
  const whole = retrievalMetrics(sim, 7, textImage);
  for (const block of [1, 2, 7, 100]) {
    const m = retrievalMetricsOfEmbeddings(img, txt, textImage, undefined, block);
    assert.deepEqual([...m.imageToText.ranks], [...whole.imageToText.ranks], `block ${block}`);
    assert.deepEqual([...m.textToImage.ranks], [...whole.textToImage.ranks], `block ${block}`);
  }
  assert.throws(() => retrievalMetrics(sim, 7, [0, 1, 2, 3, 4, 5, 5, 2, 4]), /image 6 has no caption/);
  assert.throws(() => retrievalMetrics(sim, 7, [0, 1, 2, 3, 4, 5, 6, 2, 7]), /text 8 names image 7/);
  assert.throws(() => retrievalMetrics(sim.slice(1), 7, textImage), /not 7 x 9/);
  assert.throws(() => bestRank([0.1, NaN], 0, 2, [0]), /NaN/);
  assert.throws(() => rankMetrics(new Int32Array(0)), /no queries/);
});

test('classification metrics: top-1/top-5 with ties against the lower class, per-class accuracy, confusion', () => {
  const names = ['a', 'b', 'c'];
  const scores = [
    0.1, 0.7, 0.2, // label 1: right
    0.5, 0.5, 0.0, // label 1: tie with class 0 -> predicted 0, wrong
    0.3, 0.2, 0.5, // label 2: right
    0.9, 0.0, 0.1, // label 2: wrong (predicted 0)
  ];
  const m = classificationMetrics(scores, [1, 1, 2, 2], names);
  assert.equal(m.top1, 0.5);
  assert.equal(m.top5, null, 'fewer than 5 classes');
  assert.deepEqual(m.confusion, [[0, 0, 0], [1, 1, 0], [1, 0, 1]]);
  assert.deepEqual([...m.predictions], [1, 0, 2, 0]);
  assert.deepEqual(m.perClass.map((p) => p.accuracy), [null, 0.5, 0.5]);
  assert.equal(m.meanPerClassAccuracy, 0.5);

  // Six classes: the label's rank decides top-5 (rank 5 of 6 is in, rank 6 out).
  const six = ['0', '1', '2', '3', '4', '5'];
  const s6 = [
    6, 5, 4, 3, 2, 1, // label 4 at rank 5: top-5 yes
    6, 5, 4, 3, 2, 1, // label 5 last: no
    1, 1, 1, 1, 1, 1, // label 5 tied with all, behind 5 lower indices: no
    1, 1, 1, 1, 1, 1, // label 0 tied: first, top-1
  ];
  const m6 = classificationMetrics(s6, [4, 5, 5, 0], six);
  assert.equal(m6.top1, 0.25);
  assert.equal(m6.top5, 0.5);
  assert.throws(() => classificationMetrics(s6, [4, 5, 6, 0], six), /label 6, outside \[0, 6\)/);
  assert.throws(() => classificationMetrics(s6.slice(1), [4, 5, 5, 0], six), /not 4 samples x 6 classes/);
});
