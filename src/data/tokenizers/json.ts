// tokenizer.json written by hand rather than by JSON.stringify: a JS object puts integer-like keys
// ("0", "12") first, which would reorder the vocabulary; line by line it keeps id order and the
// file diffs one entry per line.

/**
 * A tokenizer.json: the top-level fields `head` (normalizer, pre_tokenizer, ...), then the model's
 * fields, its vocabulary in id order, and its lists (BPE's merges) in order.
 */
export function tokenizerJson(head: Record<string, unknown>, model: Record<string, unknown>, vocab: readonly string[],
  lists: Record<string, readonly string[]> = {}): string {
  const lines = ['{'];
  for (const [k, v] of Object.entries(head)) lines.push(`  ${JSON.stringify(k)}: ${JSON.stringify(v)},`);
  lines.push('  "model": {');
  for (const [k, v] of Object.entries(model)) lines.push(`    ${JSON.stringify(k)}: ${JSON.stringify(v)},`);
  const sections: [string, string, string[]][] = [
    ['vocab', '{', vocab.map((token, id) => `${JSON.stringify(token)}: ${id}`)],
    ...Object.entries(lists).map(([name, items]): [string, string, string[]] => [name, '[', items.map((x) => JSON.stringify(x))]),
  ];
  sections.forEach(([name, open, items], s) => {
    lines.push(`    ${JSON.stringify(name)}: ${open}`);
    items.forEach((item, i) => lines.push(`      ${item}${i + 1 < items.length ? ',' : ''}`));
    lines.push(`    ${open === '{' ? '}' : ']'}${s + 1 < sections.length ? ',' : ''}`);
  });
  lines.push('  }', '}', '');
  return lines.join('\n');
}
