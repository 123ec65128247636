// HTML character references resolved as Python's html.unescape does: open_clip's text cleaning
// runs it (twice) before tokenizing, so captions holding "&amp;" or "&#39;" tokenize as there.
import { readFileSync } from 'node:fs';
import { assetPath } from './assets.js';

interface EntityTable {
  named: Map<string, string>; // name without ';' -> text
  legacy: Set<string>; // names also valid without the ';'
}

let table: EntityTable | undefined;

function entities(): EntityTable {
  if (!table) {
    const raw = JSON.parse(readFileSync(assetPath('tokenizers/html_entities.json'), 'utf8')) as {
      named: Record<string, string>;
      legacy: string[];
    };
    table = { named: new Map(Object.entries(raw.named)), legacy: new Set(raw.legacy) };
  }
  return table;
}

// Numeric references to C1 controls mean their windows-1252 characters (HTML's rule); the five
// bytes windows-1252 leaves undefined stay as they are.
const WINDOWS_1252 = '€\x81‚ƒ„…†‡ˆ‰Š‹Œ\x8dŽ\x8f\x90‘’“”•–—˜™š›œ\x9džŸ';

function isDroppedCodePoint(cp: number): boolean {
  return (
    (cp >= 0x1 && cp <= 0x8) ||
    cp === 0xb ||
    (cp >= 0xe && cp <= 0x1f) ||
    (cp >= 0x7f && cp <= 0x9f) ||
    (cp >= 0xfdd0 && cp <= 0xfdef) ||
    (cp & 0xfffe) === 0xfffe
  );
}

function numericReference(cp: number): string {
  if (cp === 0) return '\uFFFD';
  if (cp === 0x0d) return '\r';
  if (cp >= 0x80 && cp <= 0x9f) return WINDOWS_1252[cp - 0x80]!;
  if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return '\uFFFD';
  if (isDroppedCodePoint(cp)) return '';
  return String.fromCodePoint(cp);
}

function namedReference(body: string): string {
  const { named, legacy } = entities();
  if (body.endsWith(';')) {
    const hit = named.get(body.slice(0, -1));
    if (hit !== undefined) return hit;
  } else if (legacy.has(body)) {
    return named.get(body)!;
  }
  // The longest legacy name that prefixes the reference (e.g. "&notin" without ';' is "¬in").
  for (let n = body.length - 1; n > 1; n--) {
    const name = body.slice(0, n);
    if (legacy.has(name)) return named.get(name)! + body.slice(n);
  }
  return '&' + body;
}

const REFERENCE = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

/** Resolves named, decimal and hexadecimal character references as Python's html.unescape. */
export function unescapeHtml(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(REFERENCE, (_match, body: string) => {
    if (body[0] !== '#') return namedReference(body);
    const hex = body[1] === 'x' || body[1] === 'X';
    const digits = body.slice(hex ? 2 : 1).replace(/;$/, '');
    return numericReference(parseInt(digits, hex ? 16 : 10));
  });
}
