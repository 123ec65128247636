// Image-caption pairs listed in a CSV/TSV file, in open_clip's layout: a header row naming the
// columns, `filepath` (the image, relative paths against the file's folder) and `title` (the
// caption), tab-separated unless told otherwise; read as open_clip's `pd.read_csv` reads it (src/data/table.ts).
import fs from 'node:fs';
import path from 'node:path';
import { checkSampleIndex, readImageFile } from './common.js';
import { parseDelimited } from './table.js';
import type { Dataset, DatasetSpec, Sample } from './dataset.js';

export interface CsvOptions {
  /** Default tab (open_clip's csv_separator), for .csv files too. */
  separator?: string;
  /** Column of image paths (default 'filepath'). */
  imageColumn?: string;
  /** Column of captions (default 'title'). */
  captionColumn?: string;
}

export class CsvDataset implements Dataset {
  readonly name: string;
  readonly length: number;
  readonly spec: DatasetSpec;

  private constructor(readonly file: string, private readonly paths: string[], private readonly captions: string[], opts: CsvOptions) {
    this.name = `csv(${file})`;
    this.length = paths.length;
    this.spec = { source: file, options: { ...opts } };
  }

  /** Reads the listing (not the images: a missing image is found, and skipped, when it is loaded). */
  static open(file: string, opts: CsvOptions = {}): CsvDataset {
    const separator = opts.separator ?? '\t';
    const imageColumn = opts.imageColumn ?? 'filepath';
    const captionColumn = opts.captionColumn ?? 'title';
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new Error(`csv: cannot read ${file}: ${(e as Error).message}`, { cause: e });
    }
    const table = parseDelimited(text, separator, file);
    if (table.header.length === 0) throw new Error(`csv: ${file} is empty`);
    const header = table.header.map((h) => h.trim());
    const col = (name: string): number => {
      const c = header.indexOf(name);
      if (c < 0) {
        throw new Error(`csv: ${file} has no column '${name}' (header: ${header.map((h) => JSON.stringify(h)).join(', ')}; separator ${JSON.stringify(separator)}; set imageColumn/captionColumn/separator)`);
      }
      return c;
    };
    const ic = col(imageColumn);
    const cc = col(captionColumn);
    const dir = path.dirname(path.resolve(file));
    const paths: string[] = [];
    const captions: string[] = [];
    for (const [r, row] of table.rows.entries()) {
      const p = row[ic]!.trim();
      if (p === '') throw new Error(`csv: ${file} line ${table.lines[r]} has an empty '${imageColumn}'`);
      // pandas reads a missing caption as NaN, which open_clip would train on as the text 'nan'.
      if (row[cc] === '') throw new Error(`csv: ${file} line ${table.lines[r]} has an empty '${captionColumn}'`);
      paths.push(path.resolve(dir, p));
      captions.push(row[cc]!);
    }
    if (paths.length === 0) throw new Error(`csv: ${file} lists no images`);
    return new CsvDataset(file, paths, captions, { separator, imageColumn, captionColumn });
  }

  async get(index: number): Promise<Sample> {
    checkSampleIndex(this, index);
    const file = this.paths[index]!;
    const bytes = await readImageFile(file, 'csv');
    return { key: file, image: { kind: 'encoded', bytes, name: file }, caption: this.captions[index] };
  }
}
