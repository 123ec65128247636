// The training report: one self-contained HTML file (inline SVG line charts and CSS, no scripts
// or external assets) with the loss, the learning rate and the evaluation metrics over the steps,
// the final metrics and the config.
import fs from 'node:fs';
import { configToYAML, type TrainConfig } from './config.js';
import type { MetricsRecord } from './progress.js';

export interface ReportInput {
  title: string;
  config: TrainConfig;
  records: readonly MetricsRecord[];
  /** The last evaluation's metrics. */
  final: Record<string, number>;
  /** Why the run stopped (the trainer's sentence). */
  stopped?: string;
  /** PNG pictures shown under the curves (an MAE's reconstructions), embedded so the file stands alone. */
  pictures?: readonly { title: string; file: string }[];
}

/** Metrics on a 0-1 scale (accuracies, recalls), drawn together; any other metric gets a chart of its own. */
const isFraction = (key: string) => /top\d|R@\d|accuracy/.test(key);

export interface Series {
  name: string;
  points: readonly [number, number][];
}

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];

/** A short label for a tick value. */
function tickLabel(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(3)));
}

/** About `count` round tick values spanning [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

/** An SVG line chart of the series (x: step); non-finite points are left out. */
export function lineChart(title: string, series: readonly Series[], opts: { width?: number; height?: number; yLabel?: string } = {}): string {
  const W = opts.width ?? 720;
  const H = opts.height ?? 260;
  // Several series get a legend in a column right of the plot, where it hides no line.
  const m = { left: 64, right: series.length > 1 ? 150 : 16, top: 28, bottom: 40 };
  const pts = series.map((s) => ({ ...s, points: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)) }));
  const all = pts.flatMap((s) => s.points);
  const head = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(title)}">` +
    `<text x="${W / 2}" y="18" text-anchor="middle" class="title">${escapeHtml(title)}</text>`;
  if (all.length === 0) return `${head}<text x="${W / 2}" y="${H / 2}" text-anchor="middle" class="empty">no data</text></svg>`;
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  if (y1 === y0) [y0, y1] = [y0 - (Math.abs(y0) || 1) * 0.1, y1 + (Math.abs(y1) || 1) * 0.1];
  const pad = (y1 - y0) * 0.05;
  [y0, y1] = [y0 - pad, y1 + pad];
  const px = (x: number) => m.left + ((x - x0) / (x1 - x0)) * (W - m.left - m.right);
  const py = (y: number) => H - m.bottom - ((y - y0) / (y1 - y0)) * (H - m.top - m.bottom);
  const parts: string[] = [head];
  for (const t of niceTicks(y0, y1)) {
    if (t < y0 || t > y1) continue;
    parts.push(`<line x1="${m.left}" x2="${W - m.right}" y1="${py(t).toFixed(1)}" y2="${py(t).toFixed(1)}" class="grid"/>` +
      `<text x="${m.left - 6}" y="${(py(t) + 4).toFixed(1)}" text-anchor="end" class="tick">${tickLabel(t)}</text>`);
  }
  for (const t of niceTicks(x0, x1)) {
    if (t < x0 || t > x1) continue;
    parts.push(`<text x="${px(t).toFixed(1)}" y="${H - m.bottom + 16}" text-anchor="middle" class="tick">${tickLabel(t)}</text>`);
  }
  parts.push(`<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${H - m.bottom}" class="axis"/>` +
    `<line x1="${m.left}" x2="${W - m.right}" y1="${H - m.bottom}" y2="${H - m.bottom}" class="axis"/>` +
    `<text x="${(m.left + W - m.right) / 2}" y="${H - 6}" text-anchor="middle" class="label">step</text>`);
  if (opts.yLabel) parts.push(`<text x="14" y="${H / 2}" text-anchor="middle" transform="rotate(-90 14 ${H / 2})" class="label">${escapeHtml(opts.yLabel)}</text>`);
  pts.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const d = s.points.map(([x, y], j) => `${j ? 'L' : 'M'}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join('');
    parts.push(`<path d="${d}" fill="none" stroke="${colour}" stroke-width="1.6"><title>${escapeHtml(s.name)}</title></path>`);
    if (s.points.length <= 30) {
      for (const [x, y] of s.points) parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="2.5" fill="${colour}"/>`);
    }
    if (pts.length > 1) {
      parts.push(`<rect x="${W - m.right + 12}" y="${m.top + 4 + i * 16}" width="10" height="10" fill="${colour}"/>` +
        `<text x="${W - m.right + 27}" y="${m.top + 13 + i * 16}" class="legend">${escapeHtml(s.name)}</text>`);
    }
  });
  parts.push('</svg>');
  return parts.join('');
}

const STYLE = `body{font-family:system-ui,sans-serif;margin:2em auto;max-width:960px;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse}td,th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:.85em}
svg .title{font-size:13px;font-weight:600}svg .tick,svg .legend{font-size:10px;fill:#444}svg .label{font-size:11px;fill:#444}
svg .grid{stroke:#eee}svg .axis{stroke:#888}svg .empty{fill:#999}`;

/** The report's HTML. */
export function renderReport(input: ReportInput): string {
  const r = input.records;
  const series = (key: string): [number, number][] => r.filter((x) => typeof x[key] === 'number').map((x) => [x.step, x[key]!]);
  const evalKeys = [...new Set(r.flatMap((x) => Object.keys(x).filter((k) => k.startsWith('eval/'))))].sort();
  const last = [...r].reverse().find((x) => x.loss !== undefined);
  const summary: [string, string][] = [
    ['steps', String(r.length ? Math.max(...r.map((x) => x.step)) : 0)],
    ...(input.stopped ? [['stopped', input.stopped] as [string, string]] : []),
    ['final loss', last?.loss !== undefined ? last.loss.toFixed(4) : '-'],
    ['samples/s (last)', last?.samples_per_s !== undefined ? last.samples_per_s.toFixed(1) : '-'],
    ['training time', last?.elapsed_s !== undefined ? `${last.elapsed_s.toFixed(0)} s` : '-'],
    ...Object.entries(input.final).map(([k, v]): [string, string] => [k, v.toFixed(4)]),
  ];
  const charts = [
    lineChart('training loss', [{ name: 'loss', points: series('loss') }], { yLabel: 'loss' }),
    lineChart('learning rate', [{ name: 'lr', points: series('lr') }], { yLabel: 'lr' }),
  ];
  const fractions = evalKeys.filter(isFraction);
  const name = (k: string) => k.replace(/^eval\//, '');
  if (fractions.length) charts.push(lineChart('evaluation', fractions.map((k) => ({ name: name(k), points: series(k) })), { yLabel: 'accuracy / recall' }));
  for (const k of evalKeys.filter((k) => !isFraction(k))) charts.push(lineChart(`evaluation: ${name(k)}`, [{ name: name(k), points: series(k) }], { yLabel: name(k) }));
  const pictures = (input.pictures ?? []).filter((p) => fs.existsSync(p.file)).map((p) =>
    `<h3>${escapeHtml(p.title)}</h3><img alt="${escapeHtml(p.title)}" src="data:image/png;base64,${fs.readFileSync(p.file).toString('base64')}">`);
  const yaml = configToYAML(input.config);
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(input.title)}</title><style>${STYLE}</style></head>
<body>
<h1>${escapeHtml(input.title)}</h1>
<table>${summary.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td class="num">${escapeHtml(v)}</td></tr>`).join('')}</table>
<h2>Curves</h2>
${charts.map((c) => `<div>${c}</div>`).join('\n')}
${pictures.length ? `<h2>Pictures</h2>\n${pictures.join('\n')}` : ''}
<h2>Config</h2>
<pre>${escapeHtml(yaml)}</pre>
</body></html>
`;
}

/** Writes the report (atomically: a reader never sees half a file). */
export function writeReport(file: string, input: ReportInput): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, renderReport(input));
  fs.renameSync(tmp, file);
}
