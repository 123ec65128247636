// Delimited text (TSV, CSV) read as `pd.read_csv` reads it with its defaults, which is how open_clip
// reads its CSV listings and VLMEvalKit its MMBench TSVs. MMBench's cell values (options, hints,
// predictions) also go through pandas' missing-value and numeric-column rules, because VLMEvalKit's
// prompts and answer matching use `str()` of what pandas parsed: an all-numeric option column
// prints as '3' (int64) or '3.0' (float64, when a cell is empty), and 'None' or 'N/A' is no option.

/** pandas' default missing-value strings (`pd.read_csv` with `keep_default_na=True`, pandas 2.x). */
export const PANDAS_NA_VALUES: ReadonlySet<string> = new Set([
  '', '#N/A', '#N/A N/A', '#NA', '-1.#IND', '-1.#QNAN', '-NaN', '-nan', '1.#IND', '1.#QNAN',
  '<NA>', 'N/A', 'NA', 'NULL', 'NaN', 'None', 'n/a', 'nan', 'null',
]);

export interface DelimitedTable {
  /** Column names as written in the header. */
  header: string[];
  /** Raw cell strings (quotes removed), one array per record, padded to the header's width. */
  rows: string[][];
  /** The 1-based line where each record starts, for messages. */
  lines: number[];
}

/**
 * Splits delimited text into records as pandas' C parser does with the default dialect: a field
 * that starts with `"` is quoted (it may hold the delimiter and line breaks; `""` is one quote;
 * text after the closing quote is kept), a quote anywhere else is an ordinary character, `\n`,
 * `\r\n` and `\r` end records, blank lines are skipped. A record with more fields than the header
 * is an error; one with fewer is padded with empty (missing) cells.
 */
export function parseDelimited(text: string, delimiter: string, what = 'table'): DelimitedTable {
  if (delimiter.length !== 1 || delimiter === '"' || delimiter === '\n' || delimiter === '\r') throw new Error(`${what}: invalid delimiter ${JSON.stringify(delimiter)}`);
  const records: string[][] = [];
  const lines: number[] = [];
  // Fields are sliced between special characters found by one regex scan (per-character string
  // building is far too slow for TSVs of base64 images).
  const special = new RegExp(`[${delimiter === '\t' ? '\\t' : delimiter.replace(/[\\\]^-]/g, '\\$&')}\r\n]`, 'g');
  const n = text.length;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; // a UTF-8 byte-order mark is not part of the first name
  let line = 1;
  const countLines = (from: number, to: number) => {
    for (let k = from; k < to; k++) {
      const c = text.charCodeAt(k);
      if (c === 10 || (c === 13 && text.charCodeAt(k + 1) !== 10)) line++;
    }
  };
  while (i < n) {
    const startLine = line;
    const fields: string[] = [];
    let quoted = false;
    for (;;) {
      let field = '';
      if (text[i] === '"') {
        quoted = true;
        let k = i + 1;
        for (;;) {
          const q = text.indexOf('"', k);
          if (q < 0) throw new Error(`${what}: line ${startLine}: a quoted field is never closed`);
          field += text.slice(k, q);
          countLines(k, q);
          if (text[q + 1] === '"') {
            field += '"';
            k = q + 2;
          } else {
            i = q + 1;
            break;
          }
        }
      }
      // Unquoted text, or what follows a closing quote, runs to the next delimiter or line end.
      special.lastIndex = i;
      const m = special.exec(text);
      const stop = m ? m.index : n;
      field += text.slice(i, stop);
      fields.push(field);
      i = stop;
      if (i >= n) break;
      const c = text[i];
      if (c === delimiter) {
        i++;
        continue;
      }
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
      line++;
      break;
    }
    if (fields.length === 1 && fields[0] === '' && !quoted) continue; // a blank line
    records.push(fields);
    lines.push(startLine);
  }
  if (records.length === 0) throw new Error(`${what}: the file is empty (no header)`);
  const header = records.shift()!;
  lines.shift();
  const width = header.length;
  const rows = records.map((r, k) => {
    if (r.length > width) throw new Error(`${what}: line ${lines[k]}: ${r.length} fields, but the header has ${width}`);
    while (r.length < width) r.push('');
    return r;
  });
  return { header, rows, lines };
}

/** Whether pandas reads this cell as missing (NaN). */
export const isNA = (cell: string): boolean => PANDAS_NA_VALUES.has(cell);

const INT_RE = /^[+-]?\d+$/;
const FLOAT_RE = /^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|inf|infinity|Inf|Infinity|INF)$/;
const TRUE_VALUES = new Set(['True', 'TRUE', 'true']);
const FALSE_VALUES = new Set(['False', 'FALSE', 'false']);

/**
 * Python's `repr(float)`: the shortest digits that round-trip (as JavaScript's), written in fixed
 * notation with at least one decimal when the decimal exponent is in [-4, 16), else as `1e+16`.
 */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mant, expStr] = x.toExponential().split('e') as [string, string];
  const exp = Number(expStr);
  const neg = mant.startsWith('-');
  const digits = mant.replace('-', '').replace('.', '');
  let body: string;
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    body = `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  } else if (exp < 0) {
    body = `0.${'0'.repeat(-exp - 1)}${digits}`;
  } else if (digits.length <= exp + 1) {
    body = `${digits}${'0'.repeat(exp + 1 - digits.length)}.0`;
  } else {
    body = `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
  }
  return neg ? `-${body}` : body;
}

/**
 * A column's cells as Python's `str()` prints what pandas parsed, or null for missing cells:
 * int64 when every cell is an integer, float64 when every present cell is a number (or some
 * integer cells are missing), bool when every cell is a truth value, else the strings as written.
 */
export function pandasColumnText(cells: readonly string[]): (string | null)[] {
  const present = cells.filter((c) => !isNA(c));
  const missing = present.length < cells.length;
  if (present.length > 0 && present.every((c) => INT_RE.test(c))) {
    if (!missing) return cells.map((c) => BigInt(c).toString());
    return cells.map((c) => (isNA(c) ? null : pythonFloatRepr(Number(c))));
  }
  if (present.length > 0 && present.every((c) => FLOAT_RE.test(c))) {
    return cells.map((c) => (isNA(c) ? null : pythonFloatRepr(Number(c.replace(/^([+-]?)inf(inity)?$/i, '$1Infinity')))));
  }
  if (present.length > 0 && !missing && present.every((c) => TRUE_VALUES.has(c) || FALSE_VALUES.has(c))) {
    return cells.map((c) => (TRUE_VALUES.has(c) ? 'True' : 'False'));
  }
  return cells.map((c) => (isNA(c) ? null : c));
}

/** Writes one CSV field, quoting every field (as VLMEvalKit dumps with `csv.QUOTE_ALL`). */
export const csvField = (v: string | number | null): string => `"${String(v ?? '').replace(/"/g, '""')}"`;

/** A CSV document from a header and rows. */
export function toCSV(header: readonly string[], rows: readonly (readonly (string | number | null)[])[]): string {
  return [header, ...rows].map((r) => r.map(csvField).join(',')).join('\n') + '\n';
}
