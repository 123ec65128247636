// The training report: one self-contained HTML file (inline SVG line charts, CSS and PNG data
// URIs; no scripts or external assets) that explains the run: what was trained on what, the loss,
// the learning rate and the evaluation metrics over the steps against their chance levels,
// accuracy per attribute on seen and held-out compositions (the scenes), predictions on validation
// images, and the config the run uses.
import fs from 'node:fs';
import YAML from 'yaml';
import type { CustomModelConfig, TrainConfig } from './config.js';
import type { EvalDetails } from './evaluate.js';
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
  /** The last evaluation's chance levels and example predictions (evaluateModel's details), where it has them. */
  evaluation?: EvalDetails | null;
}

/** Metrics on a 0-1 scale (accuracies, recalls), drawn on charts from 0; any other metric gets a chart of its own. */
const isFraction = (key: string) => /top\d|R@\d|accuracy|_acc(_|$)/.test(key);

/** A per-attribute metric on seen or held-out compositions: eval/<attribute>_acc_<group>, eval/zeroshot_top1_<group>. */
const COMPOSITION_KEY = /^eval\/(.+)_(seen|held_out)$/;

export interface Series {
  name: string;
  points: readonly [number, number][];
  /** Line colour, dash pattern (SVG stroke-dasharray, '' solid) and point marker; by default the series' index picks them. */
  colour?: string;
  dash?: string;
  marker?: Marker;
}

export type Marker = 'circle' | 'square' | 'triangle' | 'diamond';

/** A horizontal reference line (a chance level), drawn dashed in grey with its label. */
export interface ReferenceLine {
  y: number;
  label: string;
}

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];
// Dash patterns and markers cycle at other periods than the colours, so series stay apart where lines coincide.
const DASHES = ['', '6 3', '2 2', '8 3 2 3'];
const MARKERS: readonly Marker[] = ['circle', 'square', 'triangle', 'diamond'];

/** A short label for a tick value. */
function tickLabel(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(3)));
}

/** A fraction as a percentage, with one decimal (two below 1%). */
const percent = (v: number): string => `${(100 * v).toFixed(Math.abs(v) < 0.01 && v !== 0 ? 2 : 1)}%`;

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

/** A point marker centred at (x, y), `scale` times its usual size. */
function markerSvg(marker: Marker, x: number, y: number, colour: string, scale = 1): string {
  const f = (v: number) => v.toFixed(1);
  const r = 3 * scale;
  switch (marker) {
    case 'circle':
      return `<circle cx="${f(x)}" cy="${f(y)}" r="${f(r)}" fill="${colour}" class="marker"/>`;
    case 'square':
      return `<rect x="${f(x - 0.93 * r)}" y="${f(y - 0.93 * r)}" width="${f(1.86 * r)}" height="${f(1.86 * r)}" fill="${colour}" class="marker"/>`;
    case 'triangle':
      return `<path d="M${f(x)},${f(y - 1.2 * r)}L${f(x + 1.13 * r)},${f(y + 0.87 * r)}L${f(x - 1.13 * r)},${f(y + 0.87 * r)}Z" fill="${colour}" class="marker"/>`;
    case 'diamond':
      return `<path d="M${f(x)},${f(y - 1.27 * r)}L${f(x + 1.27 * r)},${f(y)}L${f(x)},${f(y + 1.27 * r)}L${f(x - 1.27 * r)},${f(y)}Z" fill="${colour}" class="marker"/>`;
  }
}

export interface LineChartOptions {
  width?: number;
  height?: number;
  yLabel?: string;
  /** The x axis's label (default 'step'). */
  xLabel?: string;
  /** The x axis's span (default the data's): a run's charts share [0, last step], so none starts mid-run. */
  xRange?: readonly [number, number];
  /** The y axis's span (default the data's, padded 5%). */
  yRange?: readonly [number, number];
  /** Horizontal reference lines: chance levels. */
  references?: readonly ReferenceLine[];
}

/**
 * An SVG line chart of the series (x: step); non-finite points are left out. Each series has its
 * colour, dash pattern and, with 30 points or fewer, markers at its points, so coinciding series
 * stay told apart; several series get a legend.
 */
export function lineChart(title: string, series: readonly Series[], opts: LineChartOptions = {}): string {
  const W = opts.width ?? 720;
  const H = opts.height ?? 260;
  // Several series get a legend in a column right of the plot, where it hides no line.
  const m = { left: 64, right: series.length > 1 ? 150 : 16, top: 28, bottom: 40 };
  const pts = series.map((s) => ({ ...s, points: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)) }));
  const all = pts.flatMap((s) => s.points);
  const refs = (opts.references ?? []).filter((r) => Number.isFinite(r.y));
  const head = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(title)}">` +
    `<text x="${W / 2}" y="18" text-anchor="middle" class="title">${escapeHtml(title)}</text>`;
  if (all.length === 0) return `${head}<text x="${W / 2}" y="${H / 2}" text-anchor="middle" class="empty">no data</text></svg>`;
  let [x0, x1] = opts.xRange ?? [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  let y0: number;
  let y1: number;
  if (opts.yRange) {
    [y0, y1] = opts.yRange;
  } else {
    const ys = [...all.map((p) => p[1]), ...refs.map((r) => r.y)];
    [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    if (y1 === y0) [y0, y1] = [y0 - (Math.abs(y0) || 1) * 0.1, y1 + (Math.abs(y1) || 1) * 0.1];
    const pad = (y1 - y0) * 0.05;
    [y0, y1] = [y0 - pad, y1 + pad];
  }
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
    `<text x="${(m.left + W - m.right) / 2}" y="${H - 6}" text-anchor="middle" class="label">${escapeHtml(opts.xLabel ?? 'step')}</text>`);
  if (opts.yLabel) parts.push(`<text x="14" y="${H / 2}" text-anchor="middle" transform="rotate(-90 14 ${H / 2})" class="label">${escapeHtml(opts.yLabel)}</text>`);
  // Reference lines under the data; their labels over it, just above the lines at the left, pushed apart where close.
  let labelFloor = Infinity;
  const refLabels: string[] = [];
  for (const r of [...refs].filter((r) => r.y >= y0 && r.y <= y1).sort((a, b) => a.y - b.y)) {
    const y = py(r.y);
    const ly = Math.min(y - 3, labelFloor - 11);
    labelFloor = ly;
    parts.push(`<line x1="${m.left}" x2="${W - m.right}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" class="chance"/>`);
    refLabels.push(`<text x="${m.left + 4}" y="${ly.toFixed(1)}" class="chance-label">${escapeHtml(r.label)}</text>`);
  }
  // A series that a later one covers (the same points, within 1.5 px) is drawn wider, with larger
  // markers, so it shows as a band around the later one instead of vanishing under it.
  const coincide = (a: readonly [number, number][], b: readonly [number, number][]) =>
    a.length === b.length && a.every(([x, y], j) => x === b[j]![0] && Math.abs(py(y) - py(b[j]![1])) <= 1.5);
  pts.forEach((s, i) => {
    const colour = s.colour ?? COLOURS[i % COLOURS.length]!;
    const dash = s.dash ?? DASHES[i % DASHES.length]!;
    const marker = s.marker ?? MARKERS[i % MARKERS.length]!;
    const dashAttr = dash ? ` stroke-dasharray="${dash}"` : '';
    const covered = pts.slice(i + 1).filter((t) => coincide(s.points, t.points)).length;
    const width = 1.6 + 2.4 * covered;
    const d = s.points.map(([x, y], j) => `${j ? 'L' : 'M'}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join('');
    // A band is lighter, so a line of its own colour on it still shows.
    const band = covered ? ' opacity="0.45"' : '';
    parts.push(`<path d="${d}" fill="none" stroke="${colour}" stroke-width="${width}"${dashAttr}${band}><title>${escapeHtml(s.name)}</title></path>`);
    const marked = s.points.length <= 30;
    if (marked) for (const [x, y] of s.points) parts.push(markerSvg(marker, px(x), py(y), colour, 1 + 0.6 * covered).replace('/>', `${band}/>`));
    if (pts.length > 1) {
      const ly = m.top + 9 + i * 16;
      const lx = W - m.right + 10;
      parts.push(`<line x1="${lx}" x2="${lx + 22}" y1="${ly}" y2="${ly}" stroke="${colour}" stroke-width="1.6"${dashAttr}/>` +
        (marked ? markerSvg(marker, lx + 11, ly, colour) : '') +
        `<text x="${lx + 28}" y="${ly + 4}" class="legend">${escapeHtml(s.name)}</text>`);
    }
  });
  parts.push(...refLabels, '</svg>');
  return parts.join('');
}

const STYLE = `body{font-family:system-ui,sans-serif;margin:2em auto;max-width:960px;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}p{max-width:720px;line-height:1.4}
table{border-collapse:collapse}td,th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}td.chance{color:#777}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:.85em}
svg .title{font-size:13px;font-weight:600}svg .tick,svg .legend{font-size:10px;fill:#444}svg .label{font-size:11px;fill:#444}
svg .grid{stroke:#eee}svg .axis{stroke:#888}svg .empty{fill:#999}
svg .marker{stroke:#fff;stroke-width:.7}svg .chance{stroke:#888;stroke-dasharray:4 4}svg .chance-label{font-size:10px;fill:#666;paint-order:stroke;stroke:#fff;stroke-width:3px}
.examples{display:flex;flex-wrap:wrap;gap:12px}.examples figure{margin:0;width:128px;font-size:.8em}
.examples img{width:96px;height:96px;object-fit:contain;image-rendering:pixelated;display:block;border:3px solid #ccc}
.examples .right img{border-color:#2ca02c}.examples .wrong img{border-color:#d62728}
.examples .caption{color:#777}`;

const FAMILY_TITLES: Readonly<Record<CustomModelConfig['family'], string>> = { clip: 'CLIP', siglip: 'SigLIP', vit: 'ViT', mae: 'ViT-MAE', bert: 'BERT', oadtr: 'OadTR' };

/** A metric's name without the eval/ prefix. */
const shortName = (k: string) => k.replace(/^eval\//, '');

/**
 * The config without the sections and keys the run does not use: MAE's and MLM's settings outside
 * their tasks, the custom sizes of towers the family does not have, the validation options and evaluation settings without a validation set, the
 * unset length keys and model fields, label smoothing and layer decay outside classification,
 * patch dropout outside the image tasks, the unlocked blocks without LiT's lock, the crop's
 * aspect ratios without the random resized crop.
 */
export function reportedConfig(c: TrainConfig): Record<string, unknown> {
  const out: Record<string, unknown> = JSON.parse(JSON.stringify(c));
  const drop = (o: Record<string, unknown>, ...keys: string[]) => { for (const k of keys) delete o[k]; };
  const model = out.model as Record<string, unknown>;
  for (const [k, v] of Object.entries(model)) if (v === null) delete model[k];
  const custom = model.custom as Record<string, unknown> | undefined;
  if (custom) {
    // Each family reads only its towers' sizes (CustomModelConfig's docs).
    const family = c.model.custom!.family;
    if (family !== 'mae') drop(custom, 'decoder_width');
    if (family !== 'mae' && family !== 'oadtr') drop(custom, 'decoder_layers', 'decoder_heads');
    if (family !== 'oadtr') drop(custom, 'window', 'queries', 'decoder_mlp_dim', 'dropout');
    if (family === 'oadtr') drop(custom, 'image_size', 'patch_size', 'context_length', 'vocab_size');
    if (family !== 'clip' && family !== 'siglip') drop(custom, 'text_width', 'text_layers', 'text_heads');
    if (family !== 'clip') drop(custom, 'embed_dim');
    if (family === 'vit' || family === 'mae') drop(custom, 'context_length', 'vocab_size');
    if (family === 'bert') drop(custom, 'image_size', 'patch_size');
  }
  if (c.task !== 'mae') drop(out, 'mae');
  if (c.task !== 'mlm') drop(out, 'mlm');
  if (c.task !== 'ce') drop(out, 'label_smoothing');
  if (c.task === 'mae' || c.task === 'mlm' || c.task === 'oad') drop(out, 'patch_dropout', 'lock_image', 'unlock_last_blocks');
  if (!c.lock_image) drop(out, 'unlock_last_blocks');
  for (const k of ['epochs', 'steps', 'time_budget_s'] as const) if (c[k] === null) drop(out, k);
  const data = out.data as Record<string, unknown>;
  if (c.task === 'mlm' || c.task === 'oad') drop(data, 'augment');
  else if (c.data.augment.random_resized_crop === null) drop(data.augment as Record<string, unknown>, 'crop_ratio');
  if (c.task !== 'ce') drop(out.optim as Record<string, unknown>, 'layer_decay');
  if (c.data.val === null) {
    drop(data, 'val_options');
    drop(out, 'eval');
  }
  return out;
}

/** The chance levels of `keys`, one reference line per level, labelled with the metrics at it. */
function chanceLines(keys: readonly string[], chance: Readonly<Record<string, number>>): ReferenceLine[] {
  const byLevel = new Map<number, Set<string>>();
  for (const k of keys) {
    const v = chance[k];
    if (v === undefined) continue;
    // i2t and t2i, seen and held-out share their chance level: the line is labelled once.
    const name = shortName(k).replace(/^(i2t|t2i)_/, '').replace(/_(seen|held_out)$/, '').replace(/^zeroshot_/, '').replace(/_acc$/, '').replace(/^top(\d+)$/, 'top-$1');
    if (!byLevel.has(v)) byLevel.set(v, new Set());
    byLevel.get(v)!.add(name);
  }
  return [...byLevel].map(([y, names]) => ({ y, label: `chance ${[...names].join(', ')}: ${percent(y)}` }));
}

/** Colours by metric, dashes by group: a chart's series keep one look for one meaning. */
const styleBy = (key: string, values: readonly string[], styles: readonly string[]): string => styles[Math.max(0, values.indexOf(key)) % styles.length]!;

/** The y span of a fraction chart: from 0 to a little above its largest value or chance level. */
function fractionRange(series: readonly Series[], refs: readonly ReferenceLine[]): [number, number] {
  const hi = Math.max(...series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite), ...refs.map((r) => r.y), 0);
  return [0, Math.min(1, Math.max(0.05, hi * 1.1))];
}

/** What a per-attribute metric measures, for headings and legends: colour_acc -> colour, zeroshot_top1 -> class (top-1). */
const heading = (m: string) => (m.endsWith('_acc') ? m.slice(0, -4) : m === 'zeroshot_top1' ? 'class (top-1)' : m);

/** The table of per-attribute accuracy on seen and held-out compositions, with what it shows in a sentence. */
function compositionSection(final: Readonly<Record<string, number>>, evaluation: EvalDetails | null | undefined): string {
  const groups = [['seen', 'seen'], ['held_out', 'held-out']] as const;
  const metrics = [...new Set(Object.keys(final).map((k) => COMPOSITION_KEY.exec(k)?.[1]).filter((x): x is string => x !== undefined))];
  if (metrics.length === 0) return '';
  // The attributes first (colour, shape), then top-1 (every attribute right).
  metrics.sort((a, b) => Number(a.startsWith('zeroshot_')) - Number(b.startsWith('zeroshot_')));
  const cell = (v: number | undefined, cls = 'num') => `<td class="${cls}">${v === undefined ? '-' : percent(v)}</td>`;
  const chance = evaluation?.chance ?? {};
  const rows = groups.filter(([g]) => metrics.some((m) => final[`eval/${m}_${g}`] !== undefined)).map(([g, label]) =>
    `<tr><th>${label}</th>${metrics.map((m) => cell(final[`eval/${m}_${g}`])).join('')}</tr>`);
  const chanceRow = `<tr><th>chance</th>${metrics.map((m) => cell(chance[`eval/${m}_held_out`] ?? chance[`eval/${m}_seen`], 'num chance')).join('')}</tr>`;
  const attributes = metrics.filter((m) => m.endsWith('_acc')).map(heading);
  const held = metrics.filter((m) => m.endsWith('_acc') && final[`eval/${m}_held_out`] !== undefined);
  const sentences: string[] = [];
  if (held.length) {
    sentences.push(`On held-out compositions the predicted class has the right ${held.map((m) => `${heading(m)} for ${percent(final[`eval/${m}_held_out`]!)}`).join(' and the right ')} of the images.`);
  }
  // The weakest attribute on held-out compositions, read against the seen ones: a drop means the
  // model learnt it only in the combinations it was trained on; none, with both low, that it has
  // not learnt it at all yet; none, with both high, that it composes it.
  const weakest = held.filter((m) => final[`eval/${m}_seen`] !== undefined)
    .map((m) => ({ name: heading(m), seen: final[`eval/${m}_seen`]!, held: final[`eval/${m}_held_out`]! }))
    .sort((a, b) => a.held - b.held)[0];
  if (weakest) {
    const { name, seen, held: h } = weakest;
    const Name = `${name[0]!.toUpperCase()}${name.slice(1)}`;
    if (seen - h > 0.05) {
      sentences.push(`${Name} drops from ${percent(seen)} on seen to ${percent(h)} on held-out compositions: the model recognises a ${name} in the combinations it was trained on far better than in new ones.`);
    } else if (seen < 0.5) {
      sentences.push(`${Name} is as weak on seen compositions (${percent(seen)}): the model has not learnt ${name}s yet, rather than failed to combine them.`);
    } else {
      sentences.push(`${Name} holds from seen (${percent(seen)}) to held-out compositions: the model combines what it learnt.`);
    }
  }
  const c = evaluation?.compositions;
  const where = c ? ` Images: ${c.datasets.map(escapeHtml).join(' and ')} (${groups.filter(([g]) => c.samples[g]).map(([g, label]) => `${c.samples[g]} ${label}`).join(', ')}).` : '';
  return `<h2>Seen and held-out compositions</h2>
<p>Each class combines attributes (${attributes.map(escapeHtml).join(', ')}). Seen compositions occur in training; held-out ones never do, though each of their attributes does, with other partners. An image counts as right on an attribute when the predicted class has its true value.${where}</p>
<table><tr><th></th>${metrics.map((m) => `<th>${escapeHtml(heading(m))}</th>`).join('')}</tr>${rows.join('')}${chanceRow}</table>
${sentences.length ? `<p>${escapeHtml(sentences.join(' '))}</p>` : ''}`;
}

/** The grid of validation images with the predicted and the true class. */
function examplesSection(evaluation: EvalDetails | null | undefined): string {
  if (!evaluation || evaluation.examples.length === 0) return '';
  const figures = evaluation.examples.map((e) => {
    if (!e.image.startsWith('data:image/png;base64,')) throw new Error('report: an example image is not an embedded PNG');
    const caption = e.caption !== undefined && e.caption !== e.truth ? `<br><span class="caption">“${escapeHtml(e.caption)}”</span>` : '';
    return `<figure class="${e.correct ? 'right' : 'wrong'}"><img alt="${escapeHtml(e.truth)}" src="${e.image}">` +
      `<figcaption>predicted: <b>${escapeHtml(e.predicted)}</b><br>true: ${escapeHtml(e.truth)}${caption}</figcaption></figure>`;
  });
  return `<h2>Predictions on validation images</h2>
<p>The first ${evaluation.examples.length} images of ${escapeHtml(evaluation.dataset)} at step ${evaluation.step}, the model's prediction against the true class (green frame: right, red: wrong).</p>
<div class="examples">${figures.join('')}</div>`;
}

/** The report's HTML. */
export function renderReport(input: ReportInput): string {
  const r = input.records;
  const c = input.config;
  const evaluation = input.evaluation ?? null;
  const chance = evaluation?.chance ?? {};
  const series = (key: string): [number, number][] => r.filter((x) => typeof x[key] === 'number').map((x) => [x.step, x[key]!]);
  const evalKeys = [...new Set(r.flatMap((x) => Object.keys(x).filter((k) => k.startsWith('eval/'))))].sort();
  const last = [...r].reverse().find((x) => x.loss !== undefined);
  const lastStep = r.length ? Math.max(...r.map((x) => x.step)) : 0;
  const summary: [string, string][] = [
    ['steps', String(lastStep)],
    ...(input.stopped ? [['stopped', input.stopped] as [string, string]] : []),
    ['final loss', last?.loss !== undefined ? last.loss.toFixed(4) : '-'],
    ['samples/s (last)', last?.samples_per_s !== undefined ? last.samples_per_s.toFixed(1) : '-'],
    ['training time', last?.elapsed_s !== undefined ? `${last.elapsed_s.toFixed(0)} s` : '-'],
  ];
  // Every chart spans the whole run, from step 0: evaluations that start a quarter in are drawn a quarter in.
  const xRange = [0, Math.max(1, lastStep)] as const;
  const charts = [
    lineChart('training loss', [{ name: 'loss', points: series('loss') }], { yLabel: 'loss', xRange }),
    lineChart('learning rate', [{ name: 'lr', points: series('lr') }], { yLabel: 'lr', xRange }),
  ];
  const fractions = evalKeys.filter(isFraction);
  const fractionChart = (title: string, keys: readonly string[], yLabel: string, style: (k: string) => Partial<Series> = () => ({})) => {
    if (keys.length === 0) return;
    const s = keys.map((k) => ({ name: shortName(k), points: series(k), ...style(k) }));
    const references = chanceLines(keys, chance);
    charts.push(lineChart(title, s, { yLabel, xRange, yRange: fractionRange(s, references), references }));
  };
  // Seen before held-out, each group's metrics in one order: the legend reads as the table does.
  const composition = fractions.filter((k) => COMPOSITION_KEY.test(k)).sort((a, b) => Number(a.endsWith('_held_out')) - Number(b.endsWith('_held_out')));
  const recallAt = (k: string) => Number(/R@(\d+)/.exec(k)![1]);
  // Image to text first, each direction by k.
  const retrieval = fractions.filter((k) => /R@\d/.test(k) && !composition.includes(k))
    .sort((a, b) => Number(a.includes('t2i_')) - Number(b.includes('t2i_')) || recallAt(a) - recallAt(b));
  const ks = [...new Set(retrieval.map((k) => String(recallAt(k))))];
  fractionChart('accuracy', fractions.filter((k) => !composition.includes(k) && !retrieval.includes(k)), 'accuracy');
  fractionChart('retrieval recall (image→text solid, text→image dashed)', retrieval, 'recall', (k) => ({
    colour: styleBy(String(recallAt(k)), ks, COLOURS), dash: k.includes('t2i_') ? '6 3' : '', marker: k.includes('t2i_') ? 'square' : 'circle',
  }));
  const compositionMetrics = [...new Set(composition.map((k) => COMPOSITION_KEY.exec(k)![1]!))];
  fractionChart('seen (solid) and held-out (dashed) compositions', composition, 'accuracy', (k) => {
    const [, metric, group] = COMPOSITION_KEY.exec(k)!;
    // Held-out lines take a dash pattern each, so two that coincide show both colours.
    return {
      name: `${heading(metric!)}, ${group === 'held_out' ? 'held-out' : 'seen'}`, colour: styleBy(metric!, compositionMetrics, COLOURS),
      dash: group === 'held_out' ? styleBy(metric!, compositionMetrics, DASHES.slice(1)) : '', marker: styleBy(metric!, compositionMetrics, MARKERS) as Marker,
    };
  });
  for (const k of evalKeys.filter((k) => !isFraction(k))) charts.push(lineChart(`evaluation: ${shortName(k)}`, [{ name: shortName(k), points: series(k) }], { yLabel: shortName(k), xRange }));
  // Per-attribute metrics have their own table.
  const finalRows = Object.entries(input.final).filter(([k]) => !COMPOSITION_KEY.test(k)).map(([k, v]) =>
    `<tr><th>${escapeHtml(shortName(k))}</th><td class="num">${isFraction(k) ? percent(v) : v.toFixed(4)}</td><td class="num chance">${chance[k] === undefined ? '' : percent(chance[k]!)}</td></tr>`);
  const pictures = (input.pictures ?? []).filter((p) => fs.existsSync(p.file)).map((p) =>
    `<h3>${escapeHtml(p.title)}</h3><img alt="${escapeHtml(p.title)}" src="data:image/png;base64,${fs.readFileSync(p.file).toString('base64')}">`);
  const model = c.model.custom ? `a new ${FAMILY_TITLES[c.model.custom.family]} model` : c.model.name ?? 'the model';
  const evalText = c.data.val === null ? 'There is no validation set, so nothing is evaluated.'
    : `It is evaluated on ${escapeHtml(evaluation?.dataset ?? c.data.val)}${evaluation ? ` (${evaluation.samples} samples)` : ''}${c.eval.every > 0 ? ` every ${c.eval.every} steps and` : ''} at the end.` +
      (Object.keys(chance).length ? ' Dashed grey lines mark chance: what guessing uniformly at random scores.' : '');
  const yaml = YAML.stringify(reportedConfig(c));
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(input.title)}</title><style>${STYLE}</style></head>
<body>
<h1>${escapeHtml(input.title)}</h1>
<p>Training ${escapeHtml(model)} with the ${escapeHtml(c.task)} objective on ${escapeHtml(c.data.train)}. ${evalText}</p>
<table>${summary.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td class="num">${escapeHtml(v)}</td></tr>`).join('')}</table>
${finalRows.length ? `<h2>${evaluation ? `Evaluation at step ${evaluation.step}` : 'Last evaluation'}</h2>\n<table><tr><th>metric</th><th>value</th><th>chance</th></tr>${finalRows.join('')}</table>` : ''}
${compositionSection(input.final, evaluation)}
${examplesSection(evaluation)}
<h2>Curves</h2>
${charts.map((ch) => `<div>${ch}</div>`).join('\n')}
${pictures.length ? `<h2>Pictures</h2>\n${pictures.join('\n')}` : ''}
<h2>Config</h2>
<p>The settings this run uses (config.yaml in the run folder has every key).</p>
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
