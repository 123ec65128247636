// `glimpse train [--config file.yaml] [overrides] [--resume | --overwrite] [--out dir] [--distributed]`: runs the trainer on a
// config file, or on flags alone (`glimpse train --task mae --model.custom.family mae ...`). Overrides are written as in the file, by dotted key: `--set optim.lr=1e-3` or
// `--optim.lr 1e-3` (each value read as YAML: numbers, booleans, [lists], null).
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { describeConfig, loadConfig, parseOverrideArgs, type TrainConfig } from '../train/config.js';
import type { ProgressMode } from '../train/progress.js';
import { train, type TrainResult } from '../train/trainer.js';
import { addDistributedOption, communicatorFor } from './args.js';

export interface TrainCommandOptions {
  /** A YAML or JSON config file; on resume without one, the run folder's config.yaml; else only the overrides. */
  config?: string;
  /** [dotted key, value] overrides, applied in order after the file. */
  overrides?: readonly (readonly [string, string])[];
  /** The output folder (the same as the override out=...). */
  out?: string;
  resume?: boolean;
  /** Start over in an output folder that holds an earlier run, deleting its files. */
  overwrite?: boolean;
  progress?: ProgressMode | 'auto';
  /** Join an MPI job even when no launcher started this process as one of several ranks (communicatorFor). */
  distributed?: boolean;
}

/** The config a train command runs: the file (or, resuming, the run's saved config) plus overrides. */
export function trainCommandConfig(o: TrainCommandOptions): TrainConfig {
  const overrides = [...(o.overrides ?? []), ...(o.out !== undefined ? [['out', o.out] as const] : [])];
  let file = o.config ?? null;
  if (file === null && o.resume) {
    if (o.out === undefined) throw new Error('train: --resume without --config needs --out (the run folder)');
    file = path.join(o.out, 'config.yaml');
    if (!fs.existsSync(file)) throw new Error(`train: ${file} does not exist; pass --config`);
  }
  if (file === null && overrides.length === 0) throw new Error('train: give --config <file> or the keys as flags (see configs/ for examples, --help-config for the keys)');
  return loadConfig(file, { overrides });
}

/**
 * Runs `glimpse train`, as one rank of the job when this process is one (communicatorFor);
 * returns the trainer's result.
 */
export async function runTrainCommand(o: TrainCommandOptions): Promise<TrainResult> {
  // The config is read before joining the job, so that a bad one fails without starting MPI.
  const config = trainCommandConfig(o);
  const communicator = communicatorFor(o);
  // Rank 0 reports the job's progress.
  const progress = communicator !== null && communicator.rank !== 0 ? 'none' : o.progress ?? 'auto';
  const r = await train(config, { resume: o.resume, overwrite: o.overwrite, progress, communicator });
  // MPI_Finalize only after a run that ended well: a rank that failed exits without it, and mpirun then ends the job.
  communicator?.close();
  return r;
}

/** What the command prints when the run ends: where its outputs are, and its final metrics. */
export function formatTrainResult(r: TrainResult): string {
  const lines = [`trained ${r.step}/${r.totalSteps} steps (${r.trainSeconds.toFixed(1)} s of training steps) in ${r.outDir}`, `  ${r.stopped.message}`];
  if (r.finalLoss !== null) lines.push(`  final loss   ${r.finalLoss.toFixed(4)} (mean of the last logged steps)`);
  for (const [k, v] of Object.entries(r.metrics)) lines.push(`  ${k.padEnd(12)} ${v.toFixed(4)}`);
  if (r.modelDir) lines.push(`  model        ${r.modelDir}`);
  if (r.reportFile) lines.push(`  report       ${r.reportFile}`);
  if (r.checkpoint) lines.push(`  checkpoint   ${r.checkpoint}`);
  return lines.join('\n');
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** The commander `train` command, for the CLI to mount. */
export function trainCommand(): Command {
  return addDistributedOption(new Command('train')
    .description('train a model from a config file (YAML/JSON); overrides: --set key=value or --dotted.key value')
    .option('--config <file>', 'the config file (see configs/)')
    .option('--resume', 'continue from the newest checkpoint in the output folder')
    .option('--overwrite', 'start over in an output folder that holds an earlier run, deleting its checkpoints, metrics, report and model')
    .option('--out <dir>', 'output folder (checkpoints, metrics.jsonl, report.html, model/)')
    .option('--set <key=value>', 'override a config key (repeatable), e.g. --set optim.lr=1e-3', collect)
    .option('--progress <mode>', 'auto (a bar on a terminal), bar, lines or none', 'auto')
    .option('--json', 'print the result as one JSON line')
    .option('--help-config', 'list every config key with its default and meaning'))
    .allowUnknownOption()
    .allowExcessArguments()
    .action(async (o: { config?: string; resume?: boolean; overwrite?: boolean; out?: string; set?: string[]; progress: string; json?: boolean; helpConfig?: boolean; distributed?: boolean },
      cmd: Command) => {
      if (o.helpConfig) {
        console.log(describeConfig().join('\n'));
        return;
      }
      if (!['auto', 'bar', 'lines', 'none'].includes(o.progress)) throw new Error(`train: --progress must be auto, bar, lines or none, got '${o.progress}'`);
      // Dotted flags reach here as unknown options; --set pairs come first, then those, in order.
      const overrides = parseOverrideArgs([...(o.set ?? []).flatMap((s) => ['--set', s]), ...cmd.args]);
      const r = await runTrainCommand({
        config: o.config, resume: o.resume, overwrite: o.overwrite, out: o.out, overrides, progress: o.progress as ProgressMode | 'auto', distributed: o.distributed,
      });
      if (o.json) {
        console.log(JSON.stringify({ step: r.step, total_steps: r.totalSteps, stopped: r.stopped.reason, train_seconds: r.trainSeconds, out: r.outDir,
          model: r.modelDir, report: r.reportFile, final_loss: r.finalLoss, metrics: r.metrics }));
      } else {
        console.log(formatTrainResult(r));
      }
    });
}
