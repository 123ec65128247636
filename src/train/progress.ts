// Run output: metrics as JSON lines (one record per log step and per evaluation), and progress on
// stderr: a bar with loss, lr, samples/s and ETA on a terminal, plain lines otherwise (logs, CI).
import fs from 'node:fs';
import cliProgress from 'cli-progress';

/** One line of metrics.jsonl. */
export interface MetricsRecord {
  step: number;
  epoch: number;
  /** Mean training loss over the steps since the previous record. */
  loss?: number;
  lr?: number;
  /** Training throughput over all processes, since the previous record. */
  samples_per_s?: number;
  /** Seconds since the run (this process) started. */
  elapsed_s?: number;
  /** Evaluation metrics, prefixed `eval/`. */
  [metric: string]: number | undefined;
}

/** Appends records to a JSON-lines file. */
export class MetricsLog {
  constructor(readonly file: string) {}

  append(r: MetricsRecord): void {
    fs.appendFileSync(this.file, `${JSON.stringify(r)}\n`);
  }

  /** Every record so far (a torn last line, from a killed run, is ignored). */
  read(): MetricsRecord[] {
    if (!fs.existsSync(this.file)) return [];
    const out: MetricsRecord[] = [];
    for (const line of fs.readFileSync(this.file, 'utf8').split('\n')) {
      if (line.trim() === '') continue;
      try {
        out.push(JSON.parse(line) as MetricsRecord);
      } catch { /* a partial line */ }
    }
    return out;
  }

  /** Keeps the records up to `step`: a resumed run rewrites what came after its checkpoint. */
  truncateAfter(step: number): void {
    const kept = this.read().filter((r) => r.step <= step);
    fs.writeFileSync(this.file, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
  }
}

export type ProgressMode = 'bar' | 'lines' | 'none';

export interface ProgressValues {
  loss: number;
  lr: number;
  samplesPerSec: number;
}

const fmt = (x: number): string => (Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4 ? x.toFixed(4) : x.toExponential(3));

/** Seconds as 1h02m, 3m05s or 12s. */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const t = Math.round(s);
  if (t >= 3600) return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
  if (t >= 60) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${t}s`;
}

/** Progress on stderr; `mode` 'auto' picks the bar when stderr is a terminal. */
export class Progress {
  readonly mode: ProgressMode;
  #bar: cliProgress.SingleBar | null = null;
  #started = 0;
  #startStep = 0;

  constructor(mode: ProgressMode | 'auto', private readonly write: (line: string) => void = (l) => process.stderr.write(`${l}\n`)) {
    this.mode = mode === 'auto' ? (process.stderr.isTTY ? 'bar' : 'lines') : mode;
  }

  /** `total` is null while the run's length is unknown (a time budget before its first step). */
  start(total: number | null, step: number): void {
    this.#started = performance.now();
    this.#startStep = step;
    if (this.mode === 'bar') {
      this.#bar = new cliProgress.SingleBar({
        format: 'train |{bar}| {value}/{total} | loss {loss} | lr {lr} | {sps} samples/s | ETA {eta_formatted}',
        stream: process.stderr,
        hideCursor: true,
        etaBuffer: 50,
      }, cliProgress.Presets.shades_classic);
      this.#bar.start(total ?? 0, step, { loss: '-', lr: '-', sps: '-' });
    }
  }

  /** After each step; `values` when the step is a log step (the bar's numbers change then). */
  update(step: number, total: number | null, values: ProgressValues | null): void {
    if (this.#bar) {
      if (total !== null && total !== this.#bar.getTotal()) this.#bar.setTotal(total);
      this.#bar.update(step, values ? { loss: fmt(values.loss), lr: values.lr.toExponential(2), sps: values.samplesPerSec.toFixed(1) } : {});
    } else if (this.mode === 'lines' && values) {
      const elapsed = (performance.now() - this.#started) / 1000;
      const eta = total === null ? NaN : (elapsed / Math.max(1, step - this.#startStep)) * (total - step);
      this.write(`step ${step}/${total ?? '?'}  loss ${fmt(values.loss)}  lr ${values.lr.toExponential(3)}  ${values.samplesPerSec.toFixed(1)} samples/s  ETA ${formatDuration(eta)}`);
    }
  }

  /** A message between updates (evaluations, checkpoints). */
  log(line: string): void {
    if (this.mode === 'none') return;
    if (this.#bar) {
      // Erase the bar's line, print, and let the next update redraw it.
      process.stderr.write(`\r\x1b[2K${line}\n`);
      this.#bar.render?.();
    } else {
      this.write(line);
    }
  }

  stop(): void {
    this.#bar?.stop();
    this.#bar = null;
  }
}
