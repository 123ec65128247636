#!/usr/bin/env node
// The glimpse command line. Each subcommand is a thin layer over the library.
import { Command } from 'commander';
import { defaultBackend, hasBackend } from '../tensor/device.js';
import { loadAddon } from '../tensor/backends/native/addon.js';
import { tokenizeCommand } from './tokenize.js';
import { formatParityReport, runParity } from '../eval/parity.js';

const program = new Command();
program.name('glimpse').description('Vision-language models in TypeScript: train, run and evaluate');

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

program
  .command('bench <name> [args...]')
  .description('run a benchmark (gemm, elementwise, norm, attention, memory) and print JSON')
  .action(async (name: string, args: string[]) => {
    if (!/^[a-z0-9_-]+$/.test(name)) throw new Error(`bench: invalid benchmark name '${name}'`);
    const mod = (await import(`../../bench/${name}.js`).catch(() => {
      throw new Error(`bench: no benchmark named '${name}'`);
    })) as { run(args: string[]): Promise<unknown> };
    console.log(JSON.stringify(await mod.run(args), null, 2));
  });

program.parseAsync().catch((e: Error) => {
  console.error(`glimpse: ${e.message}`);
  process.exit(1);
});
