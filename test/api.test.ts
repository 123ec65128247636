// The public surface is part of the contract: a change to what src/index.ts exports (names or
// types) must come with a reviewed update of api/glimpse.api.txt (`npm run api:update`).
import { test } from 'node:test';
import assert from 'node:assert/strict';

test('the public API matches api/glimpse.api.txt', async () => {
  const script = new URL('../../scripts/api-report.mjs', import.meta.url).href;
  const { apiReport, currentReport } = (await import(script)) as { apiReport(): string; currentReport(): string };
  const actual = apiReport().split('\n');
  const expected = currentReport().split('\n');
  const added = actual.filter((l) => !expected.includes(l));
  const removed = expected.filter((l) => !actual.includes(l));
  assert.ok(added.length === 0 && removed.length === 0,
    `the public API changed; if intended, run npm run api:update and commit api/glimpse.api.txt\n` +
    `added:\n  ${added.slice(0, 20).join('\n  ')}\nremoved:\n  ${removed.slice(0, 20).join('\n  ')}`);
});
