#!/usr/bin/env node
// The glimpse command line. Each subcommand is a thin layer over the library.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { defaultBackend, hasBackend } from '../tensor/device.js';
import { loadAddon } from '../tensor/backends/native/addon.js';
import { addModelOptions, positiveInt } from './args.js';
import { tokenizeCommand } from './tokenize.js';
import { type ClassifyCommandOptions, classifyCommand } from './classify.js';
import { type EmbedCommandOptions, embedCommand } from './embed.js';
import { type CaptionCommandOptions, captionCommand } from './caption.js';
import { type DetectCommandOptions, detectCommand } from './detect.js';
import { formatParityReport, runParity } from '../eval/parity.js';
import { evalCommands } from './eval.js';
import { filterCommand } from './filter.js';
import { mmbenchCommand } from './mmbench.js';
import { trainCommand } from './train.js';
import { demoCommand } from './demo.js';
import { launchCommand, launchedRank, rankThreads } from './launch.js';

/** The version in the package's package.json, found upwards from this module (it runs from src/ or dist/src/). */
function packageVersion(): string {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
    if (path.dirname(dir) === dir) return 'unknown';
  }
}

/** Writes an error as the CLI does: 'glimpse: ' once, and on a rank other than 0 '[rank N] ' before every line. */
function printError(message: string, rankPrefix: string): void {
  const text = message.startsWith('glimpse: ') ? message : `glimpse: ${message}`;
  console.error(text.split('\n').map((l) => rankPrefix + l).join('\n'));
}

// A rank of a launched job: the launcher's variables say which, before MPI starts.
let job: ReturnType<typeof launchedRank>;
try {
  job = launchedRank();
} catch (e) {
  printError((e as Error).message, '');
  process.exit(1);
}
const rankPrefix = job !== null && job.rank !== 0 ? `[rank ${job.rank}] ` : '';
// Ranks that share a machine share its cores. The native thread pool reads the variable when a
// kernel first runs, which is after this.
const threads = rankThreads(os.availableParallelism(), process.env);
if (threads !== null) process.env.GLIMPSE_NUM_THREADS = String(threads);
// Rank 0 prints the job's results; the others would print the same again.
if (rankPrefix !== '') process.stdout.write = ((...args: unknown[]) => {
  const done = args.find((a) => typeof a === 'function') as (() => void) | undefined;
  if (done) queueMicrotask(done);
  return true;
}) as typeof process.stdout.write;

const program = new Command();
program.name('glimpse').description('Vision-language models in TypeScript: train, run and evaluate')
  .version(packageVersion(), '-V, --version', 'print the version');

program
  .command('info')
  .description('show the compute backend, its threads and CPU features')
  .option('--json', 'print JSON')
  .action((opts: { json?: boolean }) => {
    const addon = loadAddon();
    const info = {
      backend: defaultBackend().name,
      native: hasBackend('native'),
      threads: addon ? (addon.numThreads!() as number) : 1,
      avx2Fma: addon ? (addon.hasAvx2Fma!() as boolean) : false,
      avx512f: addon ? (addon.hasAvx512f!() as boolean) : false,
      node: process.version,
    };
    if (opts.json) console.log(JSON.stringify(info));
    else for (const [k, v] of Object.entries(info)) console.log(`${k.padEnd(9)} ${v}`);
  });

program
  .command('tokenize <texts...>')
  .description('print token ids, padded to the context length')
  .requiredOption('--model <name>', 'CLIP model name (ViT-B-32, ...) or a folder with tokenizer.json')
  .option('--json', 'print a JSON array of arrays')
  .option('--context-length <n>', 'override the context length', (v) => parseInt(v, 10))
  .action((texts: string[], o: { model: string; json?: boolean; contextLength?: number }) => {
    console.log(tokenizeCommand(texts, o));
  });

const collect = (v: string, prev: string[] = []) => [...prev, v];

addModelOptions(program
  .command('classify <images...>')
  .description("classify images (paths or globs): by an image classifier's own labels, or zero-shot against --labels (CLIP, SigLIP)")
  .requiredOption('--model <name>', 'registered model name (ViT-B-32, ...) or a model folder'))
  .option('--labels <labels...>', 'class names for a zero-shot model (comma-separated or repeated)')
  .option('--labels-file <file>', 'a file with one class name per line (zero-shot)')
  .option('--template <t>', "prompt template with {} for the class name (repeatable; default: the model folder's zeroshot_config.json, else 'a photo of a {}.')", collect)
  .option('--top-k <n>', 'labels shown per image (default 5)', (v) => parseInt(v, 10))
  .option('--json', 'print JSON')
  .action(async (images: string[], o: Omit<ClassifyCommandOptions, 'templates'> & { template?: string[] }) => {
    console.log(await classifyCommand(images, { ...o, templates: o.template }));
  });

addModelOptions(program
  .command('embed <inputs...>')
  .description('L2-normalised embeddings of images (paths or globs), or of texts with --text')
  .requiredOption('--model <name>', 'registered model name or a model folder'))
  .option('--text', 'the inputs are texts')
  .option('--batch-size <n>', 'inputs per forward pass', (v) => parseInt(v, 10))
  .option('--json', 'print JSON')
  .action(async (inputs: string[], o: EmbedCommandOptions) => {
    console.log(await embedCommand(inputs, o));
  });

addModelOptions(program
  .command('caption <images...>')
  .description('BLIP captions of images (paths or globs)')
  .requiredOption('--model <name>', 'registered model name (BLIP-base, ...) or a BLIP folder'))
  .option('--prompt <text>', "text the caption continues, e.g. 'a picture of'")
  .option('--max-tokens <n>', 'new tokens at most (default 20)', (v) => parseInt(v, 10))
  .option('--beams <n>', 'beam search width (default 1: greedy)', (v) => parseInt(v, 10))
  .option('--length-penalty <x>', 'beam length penalty (default 1)', parseFloat)
  .option('--top-p <p>', 'nucleus sampling', parseFloat)
  .option('--temperature <t>', 'sampling temperature (default 1)', parseFloat)
  .option('--seed <n>', 'sampling seed (default 0)', (v) => parseInt(v, 10))
  .option('--batch-size <n>', 'images per forward pass', (v) => parseInt(v, 10))
  .option('--json', 'print JSON [{image, caption}]')
  .action(async (images: string[], o: CaptionCommandOptions) => {
    console.log(await captionCommand(images, o));
  });

addModelOptions(program
  .command('detect')
  .description('online action detection (OadTR): one JSON line per chunk of a video, as a live stream would give them')
  .requiredOption('--model <folder>', 'an online action detector: a model folder (OadTR), or a registered name with --weights'), { tokenizer: false })
  .requiredOption('--features <file>', "a video's features (safetensors with camera [T, Dc], motion [T, Dm]), a stream-set folder or a registered source (oad-synthetic:test) with --video")
  .option('--video <name>', 'the video of a stream set')
  .option('--batch', 'run the video in batches of windows (same output)')
  .option('--batch-size <n>', 'windows per forward with --batch (default 16)', positiveInt('--batch-size'))
  .option('--top-k <n>', 'classes shown per chunk and per anticipated step (default 3)', positiveInt('--top-k'))
  .action(async (o: DetectCommandOptions) => {
    // A reader that stops early (| head) ends the stream, not in an error.
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
      process.exit(0);
    });
    await detectCommand(o, (line) => process.stdout.write(`${line}\n`));
  });

program
  .command('parity <fixture-dir>')
  .description('load a fixture folder (HF layout + inputs/outputs/grads), run forward and backward, compare')
  .option('--json', 'print the report as JSON')
  .option('--backend <name>', 'reference or native (default: the default backend)')
  .action((dir: string, o: { json?: boolean; backend?: string }) => {
    const report = runParity(dir, { backend: o.backend });
    console.log(o.json ? JSON.stringify(report) : formatParityReport(report));
    if (!report.ok) process.exitCode = 1;
  });

program.addCommand(trainCommand());
program.addCommand(launchCommand());
program.addCommand(demoCommand());

const evaluate = program.command('eval').description('evaluate a model: accuracy, zeroshot, retrieval, linear-probe, oad, mmbench');
for (const c of [...evalCommands(), mmbenchCommand()]) evaluate.addCommand(c);
program.addCommand(filterCommand());

// Commander's own errors (an unknown option, a bad value) carry the rank prefix too.
if (rankPrefix !== '') {
  const prefixed = (c: Command): void => {
    c.configureOutput({ writeErr: (s) => process.stderr.write(s.replace(/^(?=.)/gm, rankPrefix)) });
    for (const sub of c.commands) prefixed(sub);
  };
  prefixed(program);
}

program.parseAsync().catch((e: Error) => {
  printError(e.message, rankPrefix);
  process.exit(1);
});
