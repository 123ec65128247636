// MMBench: TSV reading and validation, circular expansion, answer extraction, scoring, reports,
// and Glimpse's own models as multiple-choice scorers.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import test from 'node:test';
import { tempDirs } from '../helpers.js';
import { QUESTIONS, correctLabel, imageBase64, questionOf, writeFixtureTSV, wrongLabel } from './mmbench_fixture.js';
import { parseDelimited, pandasColumnText, pythonFloatRepr } from '../../src/data/table.js';
import { type McqRow, readMMBench, rowImage } from '../../src/eval/mmbench/data.js';
import { circularGroups, circularOffset, detectOffset, expandCircular } from '../../src/eval/mmbench/circular.js';
import { type Judge, extractAnswer, inferAnswer, inferOption, inferText, judgePrompt, seededPick } from '../../src/eval/mmbench/extract.js';
import { scoreMMBench } from '../../src/eval/mmbench/score.js';
import { accTable } from '../../src/eval/mmbench/report.js';
import { formatMMBenchTSV, runMMBench, writeCircularTSV } from '../../src/eval/mmbench/run.js';
import { blipItmPredictor, dualEncoderPredictor, readPredictions } from '../../src/eval/mmbench/models.js';
import { embedImages, embedTexts, loadVisionLanguageModel, rows as tensorRows } from '../../src/tasks/zeroshot.js';
import { itmScore } from '../../src/tasks/caption.js';
import { BlipConfig, BlipForImageTextRetrieval } from '../../src/models/blip.js';
import { byteTokenizer } from '../../src/models/configs.js';
import { getModelEntry } from '../../src/models/registry.js';
import { ImageProcessor } from '../../src/data/image.js';
import { Generator } from '../../src/tensor/random.js';
import { Command } from 'commander';
import { mmbenchCommand } from '../../src/cli/mmbench.js';

const tmp = tempDirs('mmbench');

test('delimited text: quoted fields with tabs, newlines and doubled quotes; CRLF; blank lines; ragged rows', () => {
  const t = parseDelimited('a\tb\tc\n"x\ty"\t"he said ""hi"""\tq"r\r\n\n"multi\nline"\t2\n', '\t');
  assert.deepEqual(t.header, ['a', 'b', 'c']);
  assert.deepEqual(t.rows, [['x\ty', 'he said "hi"', 'q"r'], ['multi\nline', '2', '']]);
  assert.deepEqual(t.lines, [2, 4]);
  assert.throws(() => parseDelimited('a\tb\n1\t2\t3\n', '\t', 'f.tsv'), /f\.tsv: line 2: 3 fields, but the header has 2/);
  assert.throws(() => parseDelimited('a\n"open\n', '\t', 'f.tsv'), /never closed/);
});

test('cells as pandas parses them and Python prints them', () => {
  assert.deepEqual([3, 0.1, 1e16, 1e15, 1.5e-5, 0.0001, 123.456, -2.5, 1.7976931348623157e308, -0].map(pythonFloatRepr),
    ['3.0', '0.1', '1e+16', '1000000000000000.0', '1.5e-05', '0.0001', '123.456', '-2.5', '1.7976931348623157e+308', '-0.0']);
  assert.deepEqual(pandasColumnText(['1', '2', '']), ['1.0', '2.0', null]); // an integer column with a gap is float64
  assert.deepEqual(pandasColumnText(['007', '3']), ['7', '3']);
  assert.deepEqual(pandasColumnText(['1.50', 'x']), ['1.50', 'x']);
  assert.deepEqual(pandasColumnText(['None', 'cat', 'N/A']), [null, 'cat', null]);
  assert.deepEqual(pandasColumnText(['True', 'false']), ['True', 'False']);
});

test('reading an MMBench TSV: options, hints, image references, real images', async () => {
  const file = await writeFixtureTSV(tmp());
  const data = readMMBench(file, { requireAnswers: true, requireImages: true });
  assert.equal(data.rows.length, QUESTIONS.length);
  assert.deepEqual(data.warnings, []);
  const q3 = data.byIndex.get(3)!;
  assert.equal(q3.hint, 'A "tricky"\tone');
  assert.deepEqual(q3.options, [['A', 'cat'], ['B', 'dog'], ['C', 'bird']]);
  assert.equal(q3.answer, 'C');
  assert.equal(data.byIndex.get(1)!.hint, null);
  const img3 = rowImage(data, q3);
  assert.equal(img3.holder, 1);
  assert.equal(img3.mime, 'image/png');
  assert.equal(rowImage(data, data.byIndex.get(2)!).mime, 'image/jpeg');

  // image_path instead of base64: relative to the TSV's folder; circular copies keep it.
  const dir = path.dirname(file);
  fs.mkdirSync(path.join(dir, 'img'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'img', 'x.jpg'), Buffer.from(await imageBase64('jpeg', [5, 6, 7]), 'base64'));
  fs.writeFileSync(path.join(dir, 'paths.tsv'), 'index\tquestion\tA\tB\tanswer\timage_path\n1\tq\tx\ty\tB\timg/x.jpg\n');
  const byPath = readMMBench(path.join(dir, 'paths.tsv'), { requireImages: true });
  const copy = expandCircular(byPath.rows).rows[1]!;
  assert.equal(copy.index, 1_000_001);
  assert.deepEqual(rowImage(byPath, copy).bytes, fs.readFileSync(path.join(dir, 'img', 'x.jpg')));
});

test('malformed TSVs: every problem named by its index', async () => {
  const dir = tmp();
  fs.mkdirSync(dir, { recursive: true });
  const png = await imageBase64('png', [1, 2, 3]);
  const write = (name: string, text: string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };
  assert.throws(() => readMMBench(write('a.tsv', 'index\tA\tB\tanswer\n1\tx\ty\tA\n')), /missing column question/);
  assert.throws(() => readMMBench(write('b.tsv', 'index\tquestion\tA\tB\n1\tq\tx\ty\n'), { requireAnswers: true }), /missing column answer/);
  const bad = [
    'index\tquestion\tA\tB\tanswer\timage',
    `1\tq\tx\ty\tA\t${png}`,
    `1\tq\tx\ty\tB\t${png}`,
    `x1\tq\tx\ty\tB\t${png}`,
    '3\tq\tx\ty\tB\t99',
    '4\tq\tx\ty\tB\tnot base64 at all!!! but long enough to not be a reference, certainly longer than sixty-four',
  ].join('\n');
  assert.throws(() => readMMBench(write('c.tsv', bad)), (e: Error) => {
    assert.match(e.message, /4 malformed rows/);
    assert.match(e.message, /index 1: duplicate \(lines 2 and 3\)/);
    assert.match(e.message, /line 4: index "x1" is not an integer/);
    assert.match(e.message, /index 3: image "99" refers to no row/);
    assert.match(e.message, /index 4: the image cell is neither base64 nor a row index/);
    return true;
  });
  const warn = readMMBench(write('d.tsv', `index\tquestion\tA\tB\tC\tanswer\timage\n1\tq\tx\ty\t\tE\t${png}\n2\tq\tx\t\tz\tA\t${png}\n`));
  assert.deepEqual(warn.warnings, [
    'index 1: answer "E" is not one of its options (A, B); it can never be scored right',
    'index 2: options A, C have gaps; the question is not rotated in circular form',
  ]);
  const notImage = readMMBench(write('e.tsv', `index\tquestion\tA\tB\tanswer\timage\n1\tq\tx\ty\tA\t${Buffer.alloc(80, 7).toString('base64')}\n`));
  assert.throws(() => rowImage(notImage, notImage.rows[0]!), /index 1: the image is not a PNG, JPEG, GIF, WebP or BMP file/);
});

test('circular form: offsets, rotations and remapped answers as VLMEvalKit builds them', async () => {
  assert.equal(circularOffset(999_999), 1e6);
  assert.equal(circularOffset(1_000_000), 1e7);
  assert.equal(circularOffset(123_456_789), 1e9);
  const data = readMMBench(await writeFixtureTSV(tmp()));
  const exp = expandCircular(data.rows);
  assert.equal(exp.offset, 1e6);
  // 4 + 2 + 3 + 1 (kept single) + 4 + 4 + 2 rows
  assert.equal(exp.rows.length, 20);
  assert.deepEqual(exp.single, [{ index: 4, reason: 'option A is a label itself ("A")' }]);
  const at = (i: number) => exp.rows.find((r) => r.index === i)!;
  // deque.rotate(1) per copy: copy i's option at label m is the original's option at (m + i) mod k.
  assert.deepEqual(at(1_000_001).options.map(([, t]) => t), ['green', 'blue', 'yellow', 'red']);
  assert.equal(at(1_000_001).answer, 'D');
  assert.deepEqual(at(2_000_001).options.map(([, t]) => t), ['blue', 'yellow', 'red', 'green']);
  assert.equal(at(2_000_001).answer, 'C');
  assert.deepEqual(at(3_000_001).options.map(([, t]) => t), ['yellow', 'red', 'green', 'blue']);
  assert.equal(at(3_000_001).answer, 'B');
  assert.deepEqual(at(1_000_003).options.map(([, t]) => t), ['dog', 'bird', 'cat']);
  assert.equal(at(1_000_003).answer, 'B');
  for (const r of exp.rows) {
    assert.equal(r.gIndex, r.index % 1e6);
    // every copy still marks the same option text as correct
    assert.equal(r.options.find(([l]) => l === r.answer)![1], questionOf(r.question).correct, `index ${r.index}`);
  }
  assert.equal(at(1_000_001).image, '1');
  assert.equal(at(2_000_003).image, '1'); // question 3 refers to question 1's image: its copies name the row with the data
  assert.equal(exp.rows.find((r) => r.index === 1_000_004), undefined);
});

test('circular form: files holding the copies are recognised, with or without g_index', async () => {
  const dir = tmp();
  const plain = await writeFixtureTSV(dir);
  const circ = path.join(dir, 'circ.tsv');
  const w = writeCircularTSV(plain, circ);
  assert.deepEqual([w.questions, w.rows, w.offset], [7, 20, 1e6]);
  assert.throws(() => writeCircularTSV(circ, path.join(dir, 'again.tsv')), /already in circular form/);
  const fromFile = circularGroups(readMMBench(circ).rows);
  assert.equal(fromFile.wasCircular, true);
  const expanded = circularGroups(readMMBench(plain).rows);
  assert.equal(expanded.wasCircular, false);
  const shape = (s: typeof expanded) => s.groups.map((g) => g.copies.map((c) => [c.index, c.answer, c.options.map(([, t]) => t).join('|')]));
  assert.deepEqual(shape(fromFile), shape(expanded));
  // without g_index: grouped by index mod the detected offset
  const noG = readMMBench(circ).rows.map((r): McqRow => ({ ...r, gIndex: null }));
  assert.equal(detectOffset(noG), 1e6);
  assert.deepEqual(shape(circularGroups(noG)), shape(expanded));
  // a copy without its original is an error naming it
  assert.throws(() => circularGroups(noG.filter((r) => r.index !== 6)), /copies have no original question \(indices 1000006, 2000006, 3000006\)/);
  // the circular file reads back into the same rows (quoted hint with a tab and quotes included)
  assert.equal(formatMMBenchTSV(readMMBench(circ).rows), fs.readFileSync(circ, 'utf8'));
});

test('answer extraction: VLMEvalKit heuristics', () => {
  const opts: [string, string][] = [['A', 'red apple'], ['B', 'dog'], ['C', 'cat'], ['D', 'blue']];
  const labels = opts.map(([l]) => l);
  assert.equal(inferOption('B', labels), 'B');
  assert.equal(inferOption('(C) cat.', labels), 'C');
  assert.equal(inferOption('**D**', labels), 'D');
  assert.equal(inferOption('A or B', labels), null); // two labels
  // the one label must be among the last four words...
  assert.equal(inferOption('B is what I would pick for this one today', labels), null);
  assert.equal(inferOption('I would pick B for this one', labels), 'B');
  // ...unless "answer is X" says it
  assert.equal(inferOption('The correct answer is **c** because the image shows a small cat sitting there', labels), 'C');
  assert.equal(inferOption('Z', labels), 'Z');
  assert.equal(inferOption('Cannot determine the answer from this image, maybe B', labels), 'Z');
  assert.equal(inferOption('Failed to obtain answer via API. B', labels), null);
  assert.equal(inferOption('B\u3000', labels), 'B'); // Python's whitespace includes the ideographic space
  assert.equal(inferOption('the answer is E, not A', [...labels, 'E']), null); // two labels, and the verbose pattern knows A-D only
  assert.equal(inferText('It is a Cat.', opts), 'C');
  assert.equal(inferText('a cat or a dog', opts), null);
  assert.equal(inferText('cat '.repeat(20), opts), null); // longer than twice all option texts together
  assert.equal(inferAnswer('I see a red apple', opts), 'A');
  assert.equal(inferAnswer('no idea', opts), null);
});

test('the judge prompt: MMBench extraction template (English, and Chinese for CJK questions)', () => {
  const row = { question: 'What colour is it?', options: [['A', 'purple'], ['B', 'white']] } as McqRow;
  const p = judgePrompt(row, 'I am {not} sure');
  assert.ok(p.startsWith('You are an AI assistant who will help me to match an answer with several options of a single-choice question.'));
  assert.ok(p.endsWith('Example 3: \nQuestion: What colour is it??\nOptions: There are several options: \nA. purple\nB. white\n\nAnswer: I am {not} sure\nYour output: '));
  const cn = judgePrompt({ ...row, question: '这是什么颜色' }, '白色');
  assert.ok(cn.startsWith('你是一个帮助我匹配答案与单选题中多个选项的 AI 助手。'));
  assert.ok(cn.endsWith('问题: 这是什么颜色?\n选项: There are several options: \nA. purple\nB. white\n\n答案: 白色\n输出: '));
});

/** Predictions for every row of the fixture's circular form, in the ways the scoring test expects. */
function policyPredictions(rows: readonly McqRow[]): Map<number, string> {
  const out = new Map<number, string>();
  for (const r of rows) {
    const copy = Math.floor(r.index / 1e6);
    const q = r.index % 1e6;
    const right = correctLabel(r);
    let p: string;
    if (q === 1) p = right; // always right
    else if (q === 2) p = copy === 0 ? `The answer is ${right}.` : wrongLabel(r); // right once, then wrong
    else if (q === 3) p = copy === 0 ? wrongLabel(r) : `(${right})`; // wrong first
    else if (q === 4) p = 'neither'; // option text
    else if (q === 5) p = 'I am not sure'; // needs the judge
    else if (q === 6) p = 'hmm'; // the judge fails too: random
    else p = copy === 0 ? 'four' : 'Z'; // then "none of them"
    out.set(r.index, p);
  }
  return out;
}

/** A judge that reads the prompt: right for question 5, failing calls for question 6. */
function fakeJudge(): Judge & { calls: string[] } {
  const calls: string[] = [];
  return {
    name: 'fake-judge',
    calls,
    async ask(prompt: string) {
      calls.push(prompt);
      const m = /Example 3: \nQuestion: (.*)\?\nOptions: There are several options: \n([\s\S]*?)\nAnswer: /.exec(prompt)!;
      const options = m[2]!.split('\n').filter((l) => l).map((l) => [l[0]!, l.slice(3)] as [string, string]);
      if (m[1] === 'Which object is it?') return null;
      return `${correctLabel({ question: m[1]!, options })}`;
    },
  };
}

test('scoring: circular needs every rotation right; vanilla the first; exact matching leaves the rest wrong', async () => {
  const data = readMMBench(await writeFixtureTSV(tmp()));
  const set = circularGroups(data.rows);
  const preds = policyPredictions(set.groups.flatMap((g) => g.copies));
  const exact = await scoreMMBench(set, preds, { judge: null });
  const hits = (k: 'circular' | 'vanilla') => exact.questions.map((q) => q[k]);
  assert.deepEqual(hits('circular'), [1, 0, 0, 1, 0, 0, 0]);
  assert.deepEqual(hits('vanilla'), [1, 1, 0, 1, 0, 0, 1]);
  assert.equal(exact.circular.overall, 2 / 7);
  assert.equal(exact.vanilla.overall, 4 / 7);
  assert.deepEqual(exact.circular.l2_category, {
    coarse_perception: 1 / 3, 'finegrained_perception (instance-level)': 0, logic_reasoning: 1 / 2,
  });
  assert.deepEqual(exact.vanilla.category, { animal: 0, image_brightness: 1, image_colour: 0.5, letters: 1, object: 0, shape: 1 });
  assert.deepEqual(exact.circular.split, { dev: 2 / 7 });
  // Unresolved: question 5's first rotation (circular stops there) and question 6's.
  assert.equal(exact.counts.unresolved, 2);
  assert.equal(exact.counts.judge + exact.counts.random, 0);

  const judge = fakeJudge();
  const judged = await scoreMMBench(set, preds, { judge, seed: 7 });
  const g6 = set.groups.find((g) => g.main.index === 6)!;
  // Question 6: three failed calls per rotation, then a seeded pick among A-D and Z; stops at the first wrong one.
  let q6 = 1;
  let q6Calls = 0;
  for (const c of g6.copies) {
    q6Calls += 3;
    if (seededPick(['A', 'B', 'C', 'D', 'Z'], 7, c.index) !== c.answer) {
      q6 = 0;
      break;
    }
  }
  const q6Vanilla = seededPick(['A', 'B', 'C', 'D', 'Z'], 7, 6) === g6.main.answer ? 1 : 0;
  assert.deepEqual(judged.questions.map((q) => q.circular), [1, 0, 0, 1, 1, q6, 0]);
  assert.deepEqual(judged.questions.map((q) => q.vanilla), [1, 1, 0, 1, 1, q6Vanilla, 1]);
  assert.equal(judged.circular.overall, (3 + q6) / 7);
  assert.equal(judge.calls.length, 4 + q6Calls, 'four rotations of question 5, three tries per rotation of question 6 judged');
  assert.equal(judged.counts.judge, 4);
  assert.equal(judged.counts.random, q6Calls / 3);
  // The same seed gives the same picks; the judged run is reproducible.
  const again = await scoreMMBench(set, preds, { judge: fakeJudge(), seed: 7 });
  assert.deepEqual(again.questions, judged.questions);

  // A missing prediction for a copy is an error, not a pass on fewer rotations.
  const partial = new Map(preds);
  partial.delete(2_000_001);
  await assert.rejects(scoreMMBench(set, partial, { judge: null }), /no prediction for 1 rows \(indices 2000001\)/);
});

test('predictions for the original rows only: the error names the rotations they lack and how to write them', async () => {
  const dir = tmp();
  const plain = await writeFixtureTSV(dir);
  const originals = new Map(QUESTIONS.map((q) => [q.index, 'A']));
  const err = await runMMBench({ data: plain, predictions: originals, judge: null }).then(() => null, (e: Error) => e.message);
  assert.match(err ?? '', /^mmbench: no prediction for 13 rows \(indices 1000001, 2000001, 3000001, 1000002, /);
  assert.match(err ?? '', /6 questions lack predictions for their rotated copies \(question 1: 1000001, 2000001, 3000001; question 2: 1000002; question 3: 1000003, 2000003; /);
  assert.match(err ?? '', /glimpse eval mmbench --data <plain\.tsv> --circularize <circular\.tsv>.*writeCircularTSV/);
  // A data file that already holds the rotations: every row of it needs a prediction.
  const circular = path.join(dir, 'circular.tsv');
  writeCircularTSV(plain, circular);
  const onCircular = await runMMBench({ data: circular, predictions: originals, judge: null }).then(() => null, (e: Error) => e.message);
  assert.match(onCircular ?? '', /6 questions lack predictions for their rotated copies .*: predict every row of the data file, its rotated copies included$/);
});

test('extractAnswer: the judge gets 3 tries; failed calls count as tries; Z-only pool when Z is an option', async () => {
  const row = { index: 11, question: 'q', options: [['A', 'x'], ['B', 'y']] } as McqRow;
  let n = 0;
  const flaky: Judge = { name: 'j', ask: async () => (++n === 3 ? 'B' : n === 1 ? null : 'no idea') };
  assert.deepEqual(await extractAnswer(row, '???', flaky), { option: 'B', source: 'judge', log: 'B' });
  assert.equal(n, 3);
  const never: Judge = { name: 'j', ask: async () => 'no idea' };
  const r = await extractAnswer(row, '???', never, 3);
  assert.equal(r.source, 'random');
  assert.equal(r.option, seededPick(['A', 'B', 'Z'], 3, 11));
});

test('reports: VLMEvalKit acc.csv layout, JSON and predictions files', async () => {
  const dir = tmp();
  const data = readMMBench(await writeFixtureTSV(dir));
  const set = circularGroups(data.rows);
  const preds = policyPredictions(set.groups.flatMap((g) => g.copies));
  const score = await scoreMMBench(set, preds, { judge: null });
  const t = accTable(score.questions, (q) => q.circular);
  assert.deepEqual(t.header, ['split', 'Overall', 'CP', 'FP-S', 'LR', 'animal', 'image_brightness', 'image_colour', 'letters', 'object', 'shape']);
  assert.deepEqual(t.rows, [['dev', 2 / 7, 1 / 3, 0, 0.5, 0, 0, 0.5, 1, 0, 0]]);
  // The same predictions as JSONL, TSV (with the answers' quoting) and CSV give the same scores.
  const jsonl = path.join(dir, 'p.jsonl');
  fs.writeFileSync(jsonl, [...preds].map(([index, prediction]) => JSON.stringify({ index, prediction })).join('\n'));
  const tsv = path.join(dir, 'p.tsv');
  fs.writeFileSync(tsv, `index\tprediction\n${[...preds].map(([i, p]) => `${i}\t"${p.replace(/"/g, '""')}"`).join('\n')}\n`);
  const csv = path.join(dir, 'p.csv');
  fs.writeFileSync(csv, `"index","prediction"\n${[...preds].map(([i, p]) => `"${i}","${p}"`).join('\n')}\n`);
  for (const f of [jsonl, tsv, csv]) assert.deepEqual(readPredictions(f), preds, f);
  const run = await runMMBench({ data: data.file, predictions: readPredictions(jsonl), judge: null, out: path.join(dir, 'out') });
  assert.equal(run.summary.circular.overall, 2 / 7);
  assert.equal(run.summary.vanilla.overall, 4 / 7);
  assert.deepEqual(run.warnings, ['index 4: kept single in circular form (option A is a label itself ("A"))']);
  const written = JSON.parse(fs.readFileSync(path.join(dir, 'out', 'results.json'), 'utf8')) as { circular: { overall: number }; questions: unknown[] };
  assert.equal(written.circular.overall, 2 / 7);
  assert.equal(written.questions.length, 7);
  assert.equal(fs.readFileSync(path.join(dir, 'out', 'acc_vanilla.csv'), 'utf8'),
    '"split","Overall","CP","FP-S","LR","animal","image_brightness","image_colour","letters","object","shape"\n'
    + `"dev","${4 / 7}","${2 / 3}","0.0","1.0","0.0","1.0","0.5","1.0","0.0","1.0"\n`);
  fs.writeFileSync(path.join(dir, 'dup.jsonl'), '{"index":1,"prediction":"A"}\n{"index":1,"prediction":"B"}\n');
  assert.throws(() => readPredictions(path.join(dir, 'dup.jsonl')), /record 2: index 1 appears twice/);
});

test('CLIP and SigLIP as multiple-choice scorers: the argmax of image-text similarity, the same option in every rotation', async () => {
  const dir = tmp();
  const data = readMMBench(await writeFixtureTSV(dir));
  const set = circularGroups(data.rows);
  const rows = set.groups.flatMap((g) => g.copies);
  const expanded = { ...data, byIndex: new Map(rows.map((r) => [r.index, r])) };
  for (const name of ['test-clip', 'test-siglip']) {
    const vl = await loadVisionLanguageModel(name, { init: 'random' });
    const preds = await dualEncoderPredictor(vl).predict(expanded, rows);
    for (const g of set.groups) {
      const img = tensorRows(await embedImages(vl, [rowImage(expanded, g.main).bytes]))[0]!;
      const txt = tensorRows(await embedTexts(vl, g.main.options.map(([, t]) => t)));
      const sims = txt.map((t) => t.reduce((s, x, i) => s + x * img[i]!, 0));
      const best = g.main.options[sims.indexOf(Math.max(...sims))]![1];
      for (const c of g.copies) {
        const label = preds.get(c.index)!;
        assert.equal(c.options.find(([l]) => l === label)![1], best, `${name}, index ${c.index}`);
      }
    }
    // A consistent chooser scores the same circular and vanilla.
    const score = await scoreMMBench(set, preds, { judge: null });
    assert.deepEqual(score.questions.map((q) => q.circular), score.questions.map((q) => q.vanilla), name);
    assert.equal(score.counts.heuristic, score.counts.rows - score.questions.filter((q) => q.circular === 0).reduce((s, q) => s + q.copies.length - 1, 0));
  }
});

test('BLIP image-text matching as a multiple-choice scorer', async () => {
  const raw = getModelEntry('test-blip').config;
  const model = new BlipForImageTextRetrieval(BlipConfig.fromHF({ ...raw, architectures: ['BlipForImageTextRetrieval'], initializer_range: 0.5 }), { generator: new Generator(5) });
  const size = model.config.visionConfig.imageSize;
  const blip = {
    name: 'tiny-itm', model, tokenizer: byteTokenizer(model.config.textConfig.maxPositionEmbeddings),
    imageProcessor: new ImageProcessor('blip', { size: { height: size, width: size }, cropSize: { height: size, width: size } }),
  };
  const data = readMMBench(await writeFixtureTSV(tmp()));
  const set = circularGroups(data.rows);
  const rows = set.groups.flatMap((g) => g.copies);
  const expanded = { ...data, byIndex: new Map(rows.map((r) => [r.index, r])) };
  const preds = await blipItmPredictor(blip).predict(expanded, rows);
  for (const g of set.groups) {
    const { itm } = await itmScore(blip, [rowImage(expanded, g.main).bytes], g.main.options.map(([, t]) => t));
    const best = g.main.options[itm.indexOf(Math.max(...itm))]![1];
    for (const c of g.copies) assert.equal(c.options.find(([l]) => l === preds.get(c.index))![1], best, `index ${c.index}`);
  }
});

test('an undecodable image stops a model run with its index', async () => {
  const dir = tmp();
  fs.mkdirSync(dir, { recursive: true });
  const good = await imageBase64('png', [9, 9, 9]);
  const broken = Buffer.from(good, 'base64').subarray(0, 60).toString('base64'); // a PNG signature and a cut-off header
  const file = path.join(dir, 'broken.tsv');
  fs.writeFileSync(file, `index\tquestion\tA\tB\tanswer\timage\n1\tq\tx\ty\tA\t${good}\n2\tq\tx\ty\tB\t${broken}\n`);
  const vl = await loadVisionLanguageModel('test-clip', { init: 'random' });
  await assert.rejects(runMMBench({ data: file, predictor: dualEncoderPredictor(vl), judge: null }), /index 2: the image cannot be decoded/);
});

test('the CLI: a Glimpse model, a predictions file, --circularize, and a judge without an endpoint', async () => {
  const run = async (args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const program = new Command('glimpse').exitOverride().addCommand(new Command('eval').addCommand(mmbenchCommand({ out: (l) => out.push(l), err: (l) => err.push(l) })));
    await program.parseAsync(['eval', 'mmbench', ...args], { from: 'user' });
    return { out, err };
  };
  const dir = tmp();
  const data = await writeFixtureTSV(dir);
  const clip = await run(['--data', data, '--model', 'test-clip', '--random-init', '--out', path.join(dir, 'clip'), '--json']);
  const s = JSON.parse(clip.out.at(-1)!) as { circular: { overall: number; l2_category: Record<string, number> }; vanilla: { overall: number }; counts: { questions: number; rows: number }; model: string };
  assert.equal(s.model, 'test-clip');
  assert.deepEqual([s.counts.questions, s.counts.rows], [7, 20]);
  assert.deepEqual(Object.keys(s.circular.l2_category), ['coarse_perception', 'finegrained_perception (instance-level)', 'logic_reasoning']);
  assert.equal(s.circular.overall, s.vanilla.overall); // similarity picks the same option text in every rotation
  assert.deepEqual(clip.err, ['warning: index 4: kept single in circular form (option A is a label itself ("A"))']);

  const set = circularGroups(readMMBench(data).rows);
  const preds = policyPredictions(set.groups.flatMap((g) => g.copies));
  const pfile = path.join(dir, 'preds.jsonl');
  fs.writeFileSync(pfile, [...preds].map(([index, prediction]) => JSON.stringify({ index, prediction })).join('\n'));
  const fromFile = await run(['--data', data, '--predictions', pfile, '--out', path.join(dir, 'p'), '--json']);
  const fs2 = JSON.parse(fromFile.out.at(-1)!) as { circular: { overall: number }; vanilla: { overall: number }; judge: string };
  assert.deepEqual([fs2.circular.overall, fs2.vanilla.overall, fs2.judge], [2 / 7, 4 / 7, 'exact_matching']);
  assert.match(fromFile.out.join('\n'), /Overall\s+28\.57\s+57\.14/);

  const circ = path.join(dir, 'circ.tsv');
  const c = await run(['--data', data, '--circularize', circ]);
  assert.match(c.out[0]!, /7 questions, 20 rows in circular form \(offset 1000000\); 1 kept single/);
  const onCirc = await run(['--data', circ, '--predictions', pfile, '--out', path.join(dir, 'c'), '--json']);
  assert.equal((JSON.parse(onCirc.out.at(-1)!) as { circular: { overall: number } }).circular.overall, 2 / 7);

  const saved = { o: process.env.OPENAI_BASE_URL, g: process.env.GLIMPSE_JUDGE_BASE_URL };
  delete process.env.OPENAI_BASE_URL;
  delete process.env.GLIMPSE_JUDGE_BASE_URL;
  try {
    await assert.rejects(run(['--data', data, '--predictions', pfile, '--judge', 'chatgpt-0125']), /--judge chatgpt-0125: no endpoint/);
  } finally {
    if (saved.o !== undefined) process.env.OPENAI_BASE_URL = saved.o;
    if (saved.g !== undefined) process.env.GLIMPSE_JUDGE_BASE_URL = saved.g;
  }
  await assert.rejects(run(['--data', data]), /give --predictions <file> or --model <name>/);
  await assert.rejects(run(['--data', data, '--model', 'test-bert']), /a bert model cannot answer multiple-choice questions/);
  await assert.rejects(run(['--data', data, '--model', 'test-clip']), /model 'test-clip' has no weights: .*--random-init/);
  await assert.rejects(run(['--data', data, '--model', 'runs/x/model']), /runs\/x\/model: the model folder does not exist/);
  await assert.rejects(run(['--data', data, '--model', 'test-clp']), /--model test-clp: not a registered model, a model folder, or openai:<name>; did you mean 'test-clip'/);
  await assert.rejects(run(['--data', data, '--model', 'openai:m', '--base-url', 'http://127.0.0.1:9', '--random-init']), /--random-init apply to a Glimpse model, not an endpoint/);
});
