// MMBench over real HTTP: an OpenAI-protocol server on loopback plays the model under test (right,
// wrong, verbose, malformed, slow, unanswerable replies; 429 and 500 errors) and the judge, so
// retries, timeouts, the answer caches and resumption after an interruption are exercised end to end.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { tempDirs } from '../helpers.js';
import { QUESTIONS, writeFixtureTSV } from './mmbench_fixture.js';
import { type CommandIO, mmbenchCommand } from '../../src/cli/mmbench.js';
import { ChatClient } from '../../src/eval/mmbench/client.js';

const tmp = tempDirs('mmbench-http');

interface ServerState {
  /** Requests per exact prompt text (model) and in all. */
  perPrompt: Map<string, number>;
  modelRequests: number;
  judgeRequests: number;
  /** Questions whose requests always fail with 500. */
  down: Set<number>;
  /** Questions whose requests never get a reply. */
  hang: Set<number>;
  seen: { model: string; auth: string | undefined; mime: string }[];
}

/** The option label of the fixture question's correct text in a listing of "X. text" lines. */
function labelsIn(text: string): { index: number; right: string; wrong: string } {
  const question = /Question: (.*?)\??\n/.exec(text)![1]!;
  const q = QUESTIONS.find((x) => x.question.replace(/\?$/, '') === question.replace(/\?$/, ''))!;
  const opts = [...text.matchAll(/^([A-D])\. (.*)$/gm)].map((m) => [m[1]!, m[2]!] as const);
  return { index: q.index, right: opts.find(([, t]) => t === q.correct)![0], wrong: opts.find(([, t]) => t !== q.correct)![0] };
}

const reply = (content: string) => JSON.stringify({ id: 'x', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }] });

async function startServer(): Promise<{ url: string; state: ServerState; close: () => Promise<void> }> {
  const state: ServerState = { perPrompt: new Map(), modelRequests: 0, judgeRequests: 0, down: new Set(), hang: new Set(), seen: [] };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const json = JSON.parse(body) as { model: string; temperature: number; messages: { content: unknown }[] };
      const send = (status: number, text: string, headers: Record<string, string> = {}) => {
        if (!res.destroyed) res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(text);
      };
      if (req.url === '/judge/v1/chat/completions') {
        state.judgeRequests++;
        const prompt = json.messages[0]!.content as string;
        send(200, reply(labelsIn(prompt.slice(prompt.indexOf('Example 3'))).right));
        return;
      }
      if (req.url !== '/model/v1/chat/completions') return send(404, '{"error":"no such route"}');
      state.modelRequests++;
      const parts = json.messages[0]!.content as ({ type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string } })[];
      const text = parts.find((p) => p.type === 'text')! as { text: string };
      const image = parts.find((p) => p.type === 'image_url')! as { image_url: { url: string } };
      state.seen.push({ model: json.model, auth: req.headers.authorization, mime: /^data:(image\/\w+);base64,/.exec(image.image_url.url)![1]! });
      const n = (state.perPrompt.get(text.text) ?? 0) + 1;
      state.perPrompt.set(text.text, n);
      const { index, right, wrong } = labelsIn(text.text);
      if (state.hang.has(index)) return; // never answered: the client is killed meanwhile
      if (state.down.has(index)) return send(500, '{"error":"down"}');
      switch (index) {
        case 1: return send(200, reply(right));
        case 2: return send(200, reply(wrong));
        case 3: return send(200, reply(`Looking closely at the picture, the correct answer is **${right}**, because of the feathers and the beak and the wings.`));
        case 4: return n === 1 ? send(200, '{"choices": [') : send(200, reply('neither'));
        case 5:
          // Later than the client's timeout (1 s), which leaves answered requests room on a loaded machine.
          if (n === 1) setTimeout(() => send(200, reply(right)), 2500);
          else send(200, reply(right));
          return;
        case 6: return n === 1 ? send(429, '{"error":"slow down"}', { 'retry-after': '0' }) : send(200, reply('I cannot really say'));
        default: return n === 1 ? send(500, '{"error":"oops"}') : send(200, reply(right));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, state, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

function runCli(args: string[]): Promise<{ out: string[]; err: string[]; progress: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const progress: string[] = [];
  const io: CommandIO = { out: (l) => out.push(l), err: (l) => err.push(l), progress: (l) => progress.push(l) };
  const program = new Command('glimpse').exitOverride().addCommand(new Command('eval').addCommand(mmbenchCommand(io)));
  return program.parseAsync(['eval', 'mmbench', ...args], { from: 'user' }).then(() => ({ out, err, progress }));
}

test('an endpoint model and an LLM judge over HTTP: retries, timeouts, malformed replies, caching', async () => {
  const srv = await startServer();
  try {
    const dir = tmp();
    const data = await writeFixtureTSV(dir);
    const out = path.join(dir, 'out');
    const args = ['--data', data, '--model', 'openai:vlm-under-test', '--base-url', `${srv.url}/model/v1`, '--api-key', 'k-123',
      '--judge', 'judge-model', '--judge-base-url', `${srv.url}/judge/v1`, '--out', out, '--timeout', '1', '--backoff', '0.005', '--json'];
    const first = await runCli(args);
    const summary = JSON.parse(first.out.at(-1)!) as Record<string, any>;
    // Question 2 is answered wrongly; every other is right in every rotation (question 6 through the judge).
    assert.equal(summary.circular.overall, 6 / 7);
    assert.equal(summary.vanilla.overall, 6 / 7);
    assert.deepEqual(summary.circular.l2_category, { coarse_perception: 2 / 3, 'finegrained_perception (instance-level)': 1, logic_reasoning: 1 });
    assert.equal(summary.circular.category.image_brightness, 0);
    assert.deepEqual(summary.counts, { questions: 7, rows: 20, heuristic: 15, judge: 4, random: 0, unresolved: 0 });
    // 20 rows, plus one retry for each rotation of questions 4 (malformed), 5 (timeout), 6 (429) and 7 (500).
    assert.equal(srv.state.modelRequests, 20 + 1 + 4 + 4 + 2);
    assert.equal(srv.state.judgeRequests, 4);
    assert.deepEqual([first.progress.includes('asked 20/20'), first.progress.at(-1)], [true, 'scored 7/7']);
    assert.ok(srv.state.seen.every((s) => s.model === 'vlm-under-test' && s.auth === 'Bearer k-123'));
    assert.deepEqual([...new Set(srv.state.seen.map((s) => s.mime))].sort(), ['image/jpeg', 'image/png']);
    for (const f of ['results.json', 'acc_circular.csv', 'acc_vanilla.csv', 'questions.csv', 'report.txt', 'answers.jsonl', 'judge.jsonl']) {
      assert.ok(fs.existsSync(path.join(out, f)), f);
    }
    // Run again: everything comes from the caches.
    const before = [srv.state.modelRequests, srv.state.judgeRequests];
    const second = await runCli(args);
    assert.deepEqual([srv.state.modelRequests, srv.state.judgeRequests], before);
    assert.deepEqual(JSON.parse(second.out.at(-1)!), summary);
  } finally {
    await srv.close();
  }
});

test('failed rows are listed and kept out of the cache; a rerun asks only those', async () => {
  const srv = await startServer();
  try {
    const dir = tmp();
    const data = await writeFixtureTSV(dir);
    const out = path.join(dir, 'out');
    const args = ['--data', data, '--model', 'openai:m', '--base-url', `${srv.url}/model/v1`, '--out', out, '--retries', '1', '--backoff', '0.005', '--timeout', '1', '--json'];
    srv.state.down.add(7);
    await assert.rejects(runCli(args), /2 of 20 rows got no answer \(the 18 answered are kept; rerun to ask the rest\):\n {2}index 7: .*HTTP 500[\s\S]*index 1000007/);
    srv.state.down.clear();
    const before = srv.state.modelRequests;
    const res = await runCli(args);
    assert.equal(srv.state.modelRequests - before, 2);
    const summary = JSON.parse(res.out.at(-1)!) as { counts: { rows: number } };
    assert.equal(summary.counts.rows, 20);
  } finally {
    await srv.close();
  }
});

test('a run killed mid-way resumes with nothing lost or asked twice', async () => {
  const srv = await startServer();
  try {
    const dir = tmp();
    const data = await writeFixtureTSV(dir);
    const out = path.join(dir, 'out');
    const cache = path.join(out, 'answers.jsonl');
    const options = { data, model: 'openai:m', baseUrl: `${srv.url}/model/v1`, judge: 'exact', out, seed: 0, concurrency: 4, timeout: 60, retries: 2, backoff: 0.005 };
    srv.state.hang.add(7);
    const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/mmbench.js');
    const child = spawn(process.execPath, ['--input-type=module', '-e',
      `import { mmbenchAction } from ${JSON.stringify(cli)}; await mmbenchAction(${JSON.stringify(options)}, { out: console.log, err: console.error });`], { stdio: 'ignore' });
    // Every row but question 7's two rotations gets answered; then the process dies without warning.
    const lines = () => (fs.existsSync(cache) ? fs.readFileSync(cache, 'utf8').split('\n').filter((l) => l).length : 0);
    const deadline = Date.now() + 60_000;
    while (lines() < 18 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(lines(), 18);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // As if the kill had come in the middle of a write.
    fs.appendFileSync(cache, '{"key":"0123');
    srv.state.hang.clear();
    const asked = new Map(srv.state.perPrompt);
    const before = srv.state.modelRequests;
    const res = await runCli(['--data', data, '--model', 'openai:m', '--base-url', `${srv.url}/model/v1`, '--out', out, '--backoff', '0.005', '--json']);
    // Only question 7's rotations, the ones never answered, are asked again, each once.
    assert.equal(srv.state.modelRequests - before, 2);
    const askedAgain = [...srv.state.perPrompt].filter(([p, n]) => n > (asked.get(p) ?? 0)).map(([p]) => p);
    assert.equal(askedAgain.length, 2);
    assert.ok(askedAgain.every((p) => p.includes('How many sides does a square have?')));
    assert.equal(JSON.parse(res.out.at(-1)!).counts.rows, 20);
    assert.equal(lines(), 18 + 1 + 2); // the torn line stays, fenced off; two new answers
  } finally {
    await srv.close();
  }
});

test('an unreachable endpoint fails at once, naming the URL', async () => {
  const srv = await startServer();
  const url = `${srv.url}/v1`;
  await srv.close();
  const client = new ChatClient({ baseUrl: url, model: 'm', retries: 5, backoffMs: 1000 });
  const t0 = Date.now();
  await assert.rejects(client.complete([{ role: 'user', content: 'hi' }]), (e: Error) => {
    assert.match(e.message, new RegExp(`${url.replace(/[.]/g, '\\.')}/chat/completions: unreachable \\(ECONNREFUSED\\)`));
    return true;
  });
  assert.ok(Date.now() - t0 < 900, 'no backoff before failing');
  const dir = tmp();
  const data = await writeFixtureTSV(dir);
  await assert.rejects(runCli(['--data', data, '--model', 'openai:m', '--base-url', url, '--out', path.join(dir, 'o')]), /unreachable \(ECONNREFUSED\)/);
});
