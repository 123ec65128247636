// One process of `npm run bench -- ddp`: trains argv[2] (a config file) as one rank of the job
// when mpirun started several, else alone, and (rank 0) prints one line: DDP_RESULT {json} with
// the samples per second of the steps after argv[3] (from metrics.jsonl's elapsed seconds) and
// the gradient synchronisation's statistics.
import fs from 'node:fs';
import path from 'node:path';
import { joinWorld } from '../../src/dist/index.js';
import { loadConfig } from '../../src/train/config.js';
import { MetricsLog } from '../../src/train/progress.js';
import { train } from '../../src/train/trainer.js';

const communicator = joinWorld();
const config = loadConfig(process.argv[2]!);
const skip = Number(process.argv[3]);
const r = await train(config, { progress: 'none', communicator });
if ((communicator?.rank ?? 0) === 0) {
  const records = new MetricsLog(path.join(config.out, 'metrics.jsonl')).read().filter((m) => m.elapsed_s !== undefined);
  const [first, last] = [records.find((m) => m.step === skip)!, records.at(-1)!];
  const samplesPerSecond = ((last.step - first.step) * config.batch_size) / (last.elapsed_s! - first.elapsed_s!);
  console.log(`DDP_RESULT ${JSON.stringify({ samplesPerSecond, steps: r.step, gradientSync: r.gradientSync })}`);
}
communicator?.close();
fs.rmSync(config.out, { recursive: true, force: true });
