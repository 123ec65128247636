// glimpse demo, shortened: it trains, evaluates on the held-out scenes and writes the report.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { runDemo } from '../../src/cli/demo.js';
import { tempDirs } from '../helpers.js';

const newDir = tempDirs('demo');

test('the demo trains, evaluates zero-shot and retrieval on held-out scenes, and says where the report is', async () => {
  const out = newDir();
  const { result, summary } = await runDemo({ out, steps: 2, evalSamples: 40, progress: 'none' });
  assert.equal(result.step, 2);
  for (const k of ['eval/zeroshot_top1', 'eval/zeroshot_top5', 'eval/i2t_R@1', 'eval/t2i_R@5']) assert.equal(typeof result.metrics[k], 'number', k);
  assert.ok(fs.existsSync(result.reportFile!));
  assert.match(summary, /zero-shot on colour-shape pairs never seen in training/);
  assert.ok(summary.includes(result.reportFile!.split('/').pop()!));
  assert.match(summary, /top-1 \d+\.\d%/);
});
