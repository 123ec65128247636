// Images sorted into one sub-folder per class, as torchvision's ImageFolder reads them: classes are
// the sub-folder names in code-point order, and each class's files (searched recursively) are
// taken in path order, so labels and sample order match torchvision's.
import fs from 'node:fs';
import path from 'node:path';
import type { Dataset, DatasetSpec, Sample } from './dataset.js';
import { type CaptionTemplates, FOLDER_IMAGE_EXTENSIONS, checkSampleIndex, checkTemplates, readImageFile, templateCaption } from './common.js';

export interface ImageFolderOptions {
  /** Captions made from the class names (for contrastive training on a classification set). */
  captions?: CaptionTemplates;
}

const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Image files under dir (following links), ordered as sorted(os.walk(dir)) then sorted names. */
function listImages(dir: string): string[] {
  const files: string[] = [];
  const subdirs: string[] = [];
  for (const entry of fs.readdirSync(dir).sort(byCodePoint)) {
    const full = path.join(dir, entry);
    let stat: fs.Stats;
    try {
      stat = fs.statSync(full);
    } catch {
      continue; // a dangling link
    }
    if (stat.isDirectory()) subdirs.push(full);
    else if (FOLDER_IMAGE_EXTENSIONS.has(path.extname(entry).toLowerCase())) files.push(full);
  }
  return [...files, ...subdirs.flatMap(listImages)];
}

export class ImageFolder implements Dataset {
  readonly name: string;
  readonly length: number;
  readonly spec: DatasetSpec;

  private constructor(
    readonly root: string, readonly classNames: readonly string[], private readonly files: string[],
    private readonly labels: Int32Array, private readonly captions: CaptionTemplates | undefined,
  ) {
    this.name = `image-folder(${root})`;
    this.length = files.length;
    this.spec = { source: root, options: captions ? { captions } : {} };
  }

  static open(root: string, opts: ImageFolderOptions = {}): ImageFolder {
    checkTemplates(opts.captions, `image-folder ${root}`);
    if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) throw new Error(`image-folder: ${root} is not a folder`);
    const classNames = fs.readdirSync(root, { withFileTypes: true })
      .filter((d) => d.isDirectory() || (d.isSymbolicLink() && fs.statSync(path.join(root, d.name)).isDirectory()))
      .map((d) => d.name)
      .sort(byCodePoint);
    if (classNames.length === 0) throw new Error(`image-folder: ${root} has no class sub-folders`);
    const files: string[] = [];
    const labels: number[] = [];
    classNames.forEach((c, k) => {
      for (const f of listImages(path.join(root, c))) {
        files.push(f);
        labels.push(k);
      }
    });
    if (files.length === 0) {
      throw new Error(`image-folder: no images in the class folders of ${root} (extensions: ${[...FOLDER_IMAGE_EXTENSIONS].join(' ')})`);
    }
    return new ImageFolder(root, classNames, files, Int32Array.from(labels), opts.captions);
  }

  async get(index: number): Promise<Sample> {
    checkSampleIndex(this, index);
    const file = this.files[index]!;
    const bytes = await readImageFile(file, 'image-folder');
    const label = this.labels[index]!;
    const caption = this.captions ? templateCaption(this.captions, this.classNames[label]!, index) : undefined;
    return { key: path.relative(this.root, file), image: { kind: 'encoded', bytes, name: file }, label, caption };
  }
}
