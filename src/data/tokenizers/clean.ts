// Text cleaning that reference tokenizers do in Python before tokenizing, beyond what a
// tokenizer.json can express.
import { unescapeHtml } from './html.js';

// Whitespace as Python's str.strip() and the re module see it: Unicode White_Space plus the four
// information separators U+001C..U+001F (the regex module that open_clip uses leaves those out).
const PY_SPACE = '\\p{White_Space}\\x1c-\\x1f';
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'gu');
const WHITESPACE_RUN = /\p{White_Space}+/gu;
const PY_SPACE_RUN = new RegExp(`[${PY_SPACE}]+`, 'gu');

/**
 * open_clip's text cleaning before the split: html.unescape twice, strip, whitespace runs to one
 * space, lower-case. (open_clip also runs ftfy.fix_text first; like the reference ids Glimpse is
 * tested against, this assumes text that is already clean Unicode.)
 */
export function cleanClipText(text: string): string {
  let t = unescapeHtml(unescapeHtml(text)).replace(PY_STRIP, '');
  t = t.replace(WHITESPACE_RUN, ' ').replace(PY_STRIP, '');
  return t.toLowerCase();
}

const SIGLIP_PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g;

/** HF SiglipTokenizer's canonicalisation: ASCII punctuation removed, whitespace collapsed and stripped. */
export function cleanSiglipText(text: string, lowercase: boolean): string {
  const t = text.replace(SIGLIP_PUNCTUATION, '').replace(PY_SPACE_RUN, ' ').replace(PY_STRIP, '');
  return lowercase ? t.toLowerCase() : t;
}

