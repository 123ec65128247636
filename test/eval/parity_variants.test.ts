// glimpse parity on HF fixtures whose sizes and options differ from the shared ones: the parity
// tool must hold for any checkpoint in the layout, not only the shapes the models were written on.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { formatParityReport, runParity } from '../../src/eval/parity.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/hf-variants');
const folders = fs.readdirSync(root).filter((f) => fs.existsSync(path.join(root, f, 'config.json'))).sort();

test('the variant fixtures are all there', () => {
  assert.ok(folders.length >= 8, `found ${folders.join(', ')}`);
});

for (const folder of folders) {
  test(`parity: ${folder}`, () => {
    const report = runParity(path.join(root, folder));
    assert.ok(report.ok, formatParityReport(report));
    assert.ok(report.checks.length > 10, `${folder}: only ${report.checks.length} checks`);
  });
}
