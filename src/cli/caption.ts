// `glimpse caption`: BLIP captions of images (paths or globs).
import { type CaptionOptions, caption, loadBlipModel } from '../tasks/caption.js';
import { type ModelLoadingOptions, modelLoadOptions } from './args.js';
import { expandPaths } from './embed.js';

export interface CaptionCommandOptions extends Omit<CaptionOptions, 'generator'>, ModelLoadingOptions {
  /** A registered model name (BLIP-base, ...) or a BLIP captioning folder. */
  model: string;
  json?: boolean;
}

/** What `glimpse caption` prints: with --json, an array of {image, caption}; otherwise one `path<TAB>caption` line per image. */
export async function captionCommand(images: readonly string[], options: CaptionCommandOptions): Promise<string> {
  if (images.length === 0) throw new Error('caption: no images');
  const paths = expandPaths(images);
  const { model, weights, tokenizer, randomInit, json: _json, ...captionOptions } = options;
  const m = await loadBlipModel(model, modelLoadOptions({ weights, tokenizer, randomInit }));
  const captions = await caption(m, paths, captionOptions);
  if (options.json) return JSON.stringify(paths.map((image, i) => ({ image, caption: captions[i] })));
  return paths.map((p, i) => `${p}\t${captions[i]}`).join('\n');
}
