// Parsers of command-line option values shared by the commands (each names the option in its
// error), the model-loading options every command that takes --model declares, and the
// distributed option of the commands that run as ranks of a job.
import type { Command } from 'commander';
import YAML from 'yaml';
import type { Communicator } from '../dist/communicator.js';
import { joinWorld } from '../dist/world.js';

export const positiveInt = (what: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${what} must be a positive integer, got '${v}'`);
  return n;
};

export const number = (what: string) => (v: string): number => {
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x)) throw new Error(`${what} must be a number, got '${v}'`);
  return x;
};

export const fraction = (what: string) => (v: string): number => {
  const x = Number(v);
  if (!(x > 0 && x < 1)) throw new Error(`${what} must be a number in (0, 1), got '${v}'`);
  return x;
};

/** A mapping written as YAML or JSON (`{scenes: {length: 512, corruptCaptions: 0.3}}`): a dataset's options. */
export const mapping = (what: string) => (v: string): Record<string, unknown> => {
  let parsed: unknown;
  try {
    parsed = YAML.parse(v);
  } catch (e) {
    throw new Error(`${what}: not YAML or JSON: ${(e as Error).message}`, { cause: e });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`${what} must be a mapping such as '{scenes: {length: 512}}', got '${v}'`);
  return parsed as Record<string, unknown>;
};

/** How a command's --model is loaded: the options addModelOptions declares, as commander parses them. */
export interface ModelLoadingOptions {
  /** Weights folder for a registered name. */
  weights?: string;
  /** A folder with tokenizer.json, overriding the model's. */
  tokenizer?: string;
  /** Build a registered name untrained (random weights). */
  randomInit?: boolean;
}

/**
 * Declares --weights, --tokenizer and --random-init on a command that takes --model, so every
 * such command loads models the same way. `tokenizer: false` leaves --tokenizer out, for a
 * command that reads no text.
 */
export function addModelOptions(cmd: Command, opts: { tokenizer?: boolean } = {}): Command {
  cmd
    .option('--weights <folder>', 'weights for a registered name: a Hugging Face folder (config.json + model.safetensors)')
    .option('--random-init', 'build a registered name with random weights (an untrained model; its outputs mean nothing)');
  if (opts.tokenizer !== false) cmd.option('--tokenizer <folder>', "folder with tokenizer.json (default: the model folder's, else the one packaged for the name)");
  return cmd;
}

/** The library's loading options (loadVisionLanguageModel's, loadBlipModel's, createModel's) from the parsed ones. */
export function modelLoadOptions(o: ModelLoadingOptions): { weights?: string; tokenizer?: string; init?: 'random' } {
  return {
    ...(o.weights !== undefined ? { weights: o.weights } : {}),
    ...(o.tokenizer !== undefined ? { tokenizer: o.tokenizer } : {}),
    ...(o.randomInit ? { init: 'random' as const } : {}),
  };
}

/** Declares --distributed on a command that can run as one rank of an MPI job. */
export function addDistributedOption(cmd: Command): Command {
  return cmd.option('--distributed', 'join an MPI job even when no launcher says there are several ranks ' +
    '(default: join when started by glimpse launch, mpirun or srun as one of several ranks)');
}

/**
 * The communicator a command runs with: the MPI job's when --distributed asks for it or a launcher
 * started this process as one of several ranks; null for a process on its own. Throws, naming
 * scripts/install-mpi.sh, when MPI is needed and not installed.
 */
export function communicatorFor(o: { distributed?: boolean }): Communicator | null {
  return joinWorld({ distributed: o.distributed === true });
}
