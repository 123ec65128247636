#!/usr/bin/env bash
# Prints a run's evaluations (metrics.jsonl) as a Markdown table: step, epoch, elapsed seconds,
# the mean training loss of the log window before it, and the eval/* metrics in percent.
# Usage: scripts/results/curve.sh RUN_DIR
set -euo pipefail
node - "$1/metrics.jsonl" <<'JS'
const fs = require('fs');
const rows = fs.readFileSync(process.argv[2], 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const evals = rows.filter((r) => Object.keys(r).some((k) => k.startsWith('eval/')));
if (evals.length === 0) throw new Error(`${process.argv[2]}: no evaluations`);
const keys = Object.keys(evals.at(-1)).filter((k) => k.startsWith('eval/'));
// The eval after the last step has no timing of its own: the last training record's is used.
const last = (step, key) => rows.filter((r) => r.step <= step && r[key] !== undefined).at(-1)?.[key];
console.log(`| step | epoch | elapsed (s) | train loss | ${keys.map((k) => k.slice(5)).join(' | ')} |`);
console.log(`|---:|---:|---:|---:|${keys.map(() => '---:').join('|')}|`);
for (const r of evals) {
  const cells = keys.map((k) => (r[k] === undefined ? '' : (100 * r[k]).toFixed(2)));
  console.log(`| ${r.step} | ${r.epoch.toFixed(2)} | ${last(r.step, 'elapsed_s')?.toFixed(0) ?? ''} | ${last(r.step, 'loss')?.toFixed(4) ?? ''} | ${cells.join(' | ')} |`);
}
JS
