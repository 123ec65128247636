// `glimpse eval mmbench`: MMBench with CircularEval, over a predictions file or a model.
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { looksLikePath, models, modelSource } from '../models/registry.js';
import { loadVisionLanguageModel } from '../tasks/zeroshot.js';
import { loadBlipModel } from '../tasks/caption.js';
import { AnswerCache, ChatClient, JUDGE_ALIASES, chatJudge } from '../eval/mmbench/client.js';
import { type McqPredictor, blipItmPredictor, dualEncoderPredictor, endpointPredictor, readPredictions } from '../eval/mmbench/models.js';
import { formatTable } from '../eval/mmbench/report.js';
import { runMMBench, writeCircularTSV } from '../eval/mmbench/run.js';
import { addModelOptions, type ModelLoadingOptions, modelLoadOptions } from './args.js';

export interface MMBenchCommandOptions extends ModelLoadingOptions {
  data: string;
  predictions?: string;
  model?: string;
  baseUrl?: string;
  apiKey?: string;
  template?: string;
  judge: string;
  judgeBaseUrl?: string;
  judgeApiKey?: string;
  out: string;
  seed: number;
  concurrency: number;
  /** Seconds per request. */
  timeout: number;
  retries: number;
  /** Seconds before the first retry (doubled each retry). */
  backoff: number;
  maxTokens?: number;
  circularize?: string;
  json?: boolean;
}

/** Where output goes (tests capture it). */
export interface CommandIO {
  out: (line: string) => void;
  err: (line: string) => void;
  /** Progress of long stages ('predict 120/4329'); none when omitted. */
  progress?: (line: string) => void;
}

/** Progress at most every two seconds, and at the end. */
function throttled(stage: string, show: ((line: string) => void) | undefined): ((done: number, total: number) => void) | undefined {
  if (!show) return undefined;
  let last = 0;
  return (done, total) => {
    const now = Date.now();
    if (done < total && now - last < 2000) return;
    last = now;
    show(`${stage} ${done}/${total}`);
  };
}

const int = (name: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name}: expected a non-negative integer, got '${v}'`);
  return n;
};
const seconds = (name: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}: expected a number of seconds, got '${v}'`);
  return n;
};

/** The model under test: an endpoint (`openai:<name>`, or any name with --base-url), else a Glimpse model by name or folder. */
async function predictorFor(o: MMBenchCommandOptions, io: CommandIO): Promise<McqPredictor> {
  const spec = o.model!;
  const loading = modelLoadOptions(o);
  if (spec.startsWith('openai:') || o.baseUrl) {
    const given = Object.keys(loading).map((k) => (k === 'init' ? '--random-init' : `--${k}`));
    if (given.length) throw new Error(`--model ${spec}: ${given.join(', ')} apply to a Glimpse model, not an endpoint`);
    const baseUrl = o.baseUrl ?? process.env.OPENAI_BASE_URL;
    if (!baseUrl) throw new Error(`--model ${spec}: an endpoint model needs --base-url (or OPENAI_BASE_URL)`);
    const client = new ChatClient({
      baseUrl, model: spec.replace(/^openai:/, ''), apiKey: o.apiKey ?? process.env.OPENAI_API_KEY,
      timeoutMs: o.timeout * 1000, retries: o.retries, backoffMs: o.backoff * 1000, maxTokens: o.maxTokens,
    });
    return endpointPredictor(client, {
      cache: AnswerCache.open(path.join(o.out, 'answers.jsonl')), concurrency: o.concurrency, onProgress: throttled('asked', io.progress),
    });
  }
  if (!models.find(spec) && !fs.existsSync(spec) && !looksLikePath(spec)) {
    const close = models.closeMatches(spec);
    const hint = close.length ? `; did you mean ${close.map((n) => `'${n}'`).join(', ')}?` : '';
    throw new Error(`--model ${spec}: not a registered model, a model folder, or openai:<name>${hint}`);
  }
  const { modelType } = modelSource(spec, loading, (type) => {
    if (type !== 'clip' && type !== 'siglip' && type !== 'blip') {
      throw new Error(`--model ${spec}: a ${type} model cannot answer multiple-choice questions (CLIP, SigLIP or BLIP retrieval can)`);
    }
  });
  if (modelType === 'blip') return blipItmPredictor(await loadBlipModel(spec, loading), { template: o.template });
  return dualEncoderPredictor(await loadVisionLanguageModel(spec, loading), { template: o.template });
}

/** Runs the command with parsed options; what it prints goes to `io`. */
export async function mmbenchAction(o: MMBenchCommandOptions, io: CommandIO): Promise<void> {
  if (o.circularize) {
    const r = writeCircularTSV(o.data, o.circularize);
    io.out(`${o.circularize}: ${r.questions} questions, ${r.rows} rows in circular form (offset ${r.offset}); ${r.single.length} kept single`);
    for (const s of r.single) io.err(`warning: index ${s.index}: kept single (${s.reason})`);
    return;
  }
  if (!o.predictions === !o.model) throw new Error('eval mmbench: give --predictions <file> or --model <name>, one of them');
  let judge = null;
  if (o.judge !== 'exact' && o.judge !== 'exact_matching') {
    const baseUrl = o.judgeBaseUrl ?? process.env.GLIMPSE_JUDGE_BASE_URL ?? process.env.OPENAI_BASE_URL;
    if (!baseUrl) throw new Error(`--judge ${o.judge}: no endpoint; pass --judge-base-url or set GLIMPSE_JUDGE_BASE_URL (or OPENAI_BASE_URL), or use --judge exact`);
    const client = new ChatClient({
      baseUrl, model: JUDGE_ALIASES[o.judge] ?? o.judge, apiKey: o.judgeApiKey ?? process.env.GLIMPSE_JUDGE_API_KEY ?? process.env.OPENAI_API_KEY,
      timeoutMs: o.timeout * 1000, retries: o.retries, backoffMs: o.backoff * 1000,
    });
    judge = chatJudge(client, AnswerCache.open(path.join(o.out, 'judge.jsonl')));
  }
  const scored = throttled('scored', io.progress);
  const run = await runMMBench({
    data: o.data,
    predictions: o.predictions ? readPredictions(o.predictions) : undefined,
    predictor: o.model ? await predictorFor(o, io) : undefined,
    judge, seed: o.seed, out: o.out, concurrency: o.concurrency,
    onProgress: scored && ((stage, done, total) => {
      if (stage === 'score') scored(done, total);
    }),
  });
  for (const w of run.warnings) io.err(`warning: ${w}`);
  io.out(formatTable(run.score));
  io.out(`reports: ${run.files.join(', ')}`);
  if (o.json) io.out(JSON.stringify(run.summary));
}

/** The `mmbench` subcommand, to mount under `glimpse eval`. */
export function mmbenchCommand(io: CommandIO = {
  out: (l) => console.log(l),
  err: (l) => console.error(l),
  progress: process.stderr.isTTY ? (l) => console.error(l) : undefined,
}): Command {
  return addModelOptions(new Command('mmbench')
    .description('MMBench with CircularEval (as VLMEvalKit scores it) over a predictions file or a model')
    .requiredOption('--data <file>', 'MMBench TSV (plain or circular; index, question, hint, A..., answer, category, l2-category, split, image)')
    .option('--predictions <file>', 'predictions made elsewhere: TSV, CSV or JSONL with index and prediction')
    .option('--model <name>', 'openai:<name> (or any name with --base-url) for a chat endpoint; or a CLIP/SigLIP/BLIP-retrieval name or folder')
    .option('--base-url <url>', 'endpoint of the model under test (default OPENAI_BASE_URL)')
    .option('--api-key <key>', 'API key of the model under test (default OPENAI_API_KEY)'))
    .option('--template <t>', "text scored for each option by CLIP/SigLIP/BLIP, {} for the option (default '{}')")
    .option('--judge <model>', "'exact' (heuristics only) or the judge's model name (VLMEvalKit's short names such as chatgpt-0125 work)", 'exact')
    .option('--judge-base-url <url>', 'judge endpoint (default GLIMPSE_JUDGE_BASE_URL, then OPENAI_BASE_URL)')
    .option('--judge-api-key <key>', 'judge API key (default GLIMPSE_JUDGE_API_KEY, then OPENAI_API_KEY)')
    .option('--out <dir>', 'reports and answer caches', 'mmbench-out')
    .option('--seed <n>', 'seed of the random fallback', int('seed'), 0)
    .option('--concurrency <n>', 'requests in flight at once', int('concurrency'), 4)
    .option('--timeout <s>', 'seconds per request', seconds('timeout'), 60)
    .option('--retries <n>', 'retries per request on 429, 5xx, timeouts, malformed replies', int('retries'), 5)
    .option('--backoff <s>', 'seconds before the first retry, doubled each time (a Retry-After header wins)', seconds('backoff'), 1)
    .option('--max-tokens <n>', 'max_tokens for the model under test', int('max-tokens'))
    .option('--circularize <out.tsv>', 'only write the circular form of --data to this file')
    .option('--json', 'print the summary as one JSON object on the last line')
    .action(async (o: MMBenchCommandOptions) => {
      await mmbenchAction(o, io);
    });
}
