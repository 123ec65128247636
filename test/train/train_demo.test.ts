// glimpse demo, shortened: it trains, evaluates on the held-out scenes and writes the report; it
// says why it stopped, its saved config reproduces it, and its zero-shot figure comes back from
// the saved model with the command it prints.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { demoPlan, runDemo } from '../../src/cli/demo.js';
import { zeroShotCommand } from '../../src/cli/eval.js';
import { loadConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { tempDirs } from '../helpers.js';

const newDir = tempDirs('demo');

/** The words of a shell command line, single quotes removed. */
function words(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

test('the demo trains, evaluates zero-shot and retrieval on held-out scenes, and says where the report is', async () => {
  const out = newDir();
  const { result, summary } = await runDemo({ out, steps: 2, evalSamples: 40, progress: 'none' });
  assert.equal(result.step, 2);
  for (const k of ['eval/zeroshot_top1', 'eval/zeroshot_top5', 'eval/i2t_R@1', 'eval/t2i_R@5', 'eval/colour_acc_held_out', 'eval/shape_acc_seen']) assert.equal(typeof result.metrics[k], 'number', k);
  assert.ok(fs.existsSync(result.reportFile!));
  assert.match(summary, /zero-shot on colour-shape pairs never seen in training/);
  assert.ok(summary.includes(result.reportFile!.split('/').pop()!));
  assert.match(summary, /top-1 \d+\.\d%/);

  // Why it stopped, and the final loss the report shows.
  assert.ok(summary.startsWith('stopped after 2 steps: the run\'s 2 steps are done\n'), summary);
  const loss = result.finalLoss!.toFixed(4);
  assert.match(summary, new RegExp(`final loss ${loss} `));
  assert.match(fs.readFileSync(result.reportFile!, 'utf8'), new RegExp(`<th>final loss</th><td class="num">${loss}</td>`));
  assert.match(summary, /the colour is right \d+\.\d% of the time, the shape \d+\.\d% \(chance 12\.5%\); on seen pairs \d+\.\d% and \d+\.\d%/);

  // The command the summary prints gives the run's zero-shot figure from the saved model.
  const line = summary.split('\n').find((l) => l.includes('glimpse eval zeroshot'))!;
  const args = words(line.slice(line.indexOf('glimpse eval zeroshot') + 'glimpse eval '.length));
  const lines: string[] = [];
  const log = console.log;
  console.log = (s: string) => lines.push(s);
  try {
    await new Command().exitOverride().addCommand(zeroShotCommand()).parseAsync([...args, '--json'], { from: 'user' });
  } finally {
    console.log = log;
  }
  const again = JSON.parse(lines.at(-1)!);
  assert.equal(again.top1, result.metrics['eval/zeroshot_top1']);
  assert.equal(again.top5, result.metrics['eval/zeroshot_top5']);

  // The saved config.yaml is the run: trained again, it gives the same losses.
  const rerun = await train(loadConfig(path.join(out, 'config.yaml'), { overrides: [['out', newDir()]] }), { progress: 'none' });
  assert.deepEqual(rerun.losses, result.losses);
  assert.equal(rerun.finalLoss, result.finalLoss);

  // A second demo into the same folder is refused, unless told to replace the first.
  await assert.rejects(runDemo({ out, steps: 1, evalSamples: 40, progress: 'none' }), /holds an earlier run \(checkpoints\/, metrics\.jsonl\).*--overwrite/);
  const replaced = await runDemo({ out, steps: 1, evalSamples: 40, progress: 'none', overwrite: true });
  assert.equal(replaced.result.step, 1);
});

test('the demo sized by time trains on the config\'s time budget, which its saved config.yaml keeps; nothing else cuts it short', () => {
  const { config, options } = demoPlan({ out: 'runs/x', minutes: 4 });
  assert.equal(config.time_budget_s, 216, 'nine tenths of the 4 minutes');
  assert.equal(config.steps, null);
  assert.equal(config.optim.warmup_steps, 50);
  assert.ok(config.eval.every > 0 && config.checkpoint.every === config.eval.every);
  assert.equal(options.timeBudgetSeconds, undefined);
  assert.equal(options.stopAfterStep, undefined);
  const fixed = demoPlan({ out: 'runs/x', steps: 40 }).config;
  assert.equal(fixed.steps, 40);
  assert.equal(fixed.time_budget_s, null);
  assert.equal(fixed.optim.warmup_steps, 4);
});
