// One rank of the data-parallel training tests (train.test.ts runs it under mpirun): trains the
// config file given as argv[2] with the job's communicator. argv[3], when given, is JSON of
// TrainOptions (resume, stopAfterStep). GLIMPSE_TEST_RANK1_CONFIG, when set, is a config file
// rank 1 reads instead (a rank that differs). Every rank writes its result to <out>/rank-<r>.json;
// rank 1 writes its pid to <out>/rank-1.pid before training (for the SIGKILL test).
import fs from 'node:fs';
import path from 'node:path';
import { joinWorld } from '../../src/dist/index.js';
import { loadConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { isWorker } from './mpirun.js';

if (isWorker()) {
  const communicator = joinWorld({ distributed: true })!;
  const file = communicator.rank === 1 && process.env.GLIMPSE_TEST_RANK1_CONFIG ? process.env.GLIMPSE_TEST_RANK1_CONFIG : process.argv[2]!;
  const config = loadConfig(file);
  fs.mkdirSync(config.out, { recursive: true });
  if (communicator.rank === 1) fs.writeFileSync(path.join(config.out, 'rank-1.pid'), String(process.pid));
  const options = JSON.parse(process.argv[3] ?? '{}') as { resume?: boolean; stopAfterStep?: number };
  const r = await train(config, { progress: 'none', communicator, ...options });
  fs.writeFileSync(path.join(config.out, `rank-${communicator.rank}.json`), JSON.stringify({ losses: r.losses, step: r.step, metrics: r.metrics, modelDir: r.modelDir }));
  communicator.close();
}
