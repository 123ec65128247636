// Accuracy per attribute on seen and held-out compositions (the scenes' colour-shape pairs): for
// each image, whether the predicted class has the true colour, the true shape, both. A model that
// composes what it learnt keeps its shape accuracy on pairs training never showed; one that
// memorised pairs gets the colour right and answers with a shape that colour was seen with.
import type { ClassCompositions, Dataset } from '../data/dataset.js';
import type { VisionLanguageModel } from '../tasks/zeroshot.js';
import { evaluateZeroShot, type ZeroShotEvalOptions } from './classification.js';

export interface AttributeAccuracy {
  /** Images of the group. */
  readonly samples: number;
  /** Fraction of them whose predicted class has the true value, by attribute. */
  readonly attributes: Readonly<Record<string, number>>;
  /** Fraction with every attribute right: the predicted class is the true one (top-1). */
  readonly exact: number;
}

export interface CompositionalAccuracy {
  /** Images of compositions training shows; null when there are none. */
  readonly seen: AttributeAccuracy | null;
  /** Images of compositions training never shows; null when there are none. */
  readonly heldOut: AttributeAccuracy | null;
  /** What a uniformly random class gets right, by attribute: 1 / its distinct values (every value names as many classes). */
  readonly chance: Readonly<Record<string, number>>;
}

function checkCompositions(c: ClassCompositions, classes: number): void {
  if (c.values.length !== classes) throw new Error(`compositions: ${c.values.length} classes described, but the predictions have ${classes}`);
  c.values.forEach((v, k) => {
    if (v.length !== c.attributes.length) throw new Error(`compositions: class ${k} has ${v.length} attribute values, not ${c.attributes.length} (${c.attributes.join(', ')})`);
  });
}

/**
 * Per-attribute accuracy of the predictions a confusion matrix counts (confusion[true][predicted],
 * as classificationMetrics gives it), the images grouped by whether their true class is held out.
 */
export function compositionalAccuracy(confusion: readonly (readonly number[])[], compositions: ClassCompositions): CompositionalAccuracy {
  const C = confusion.length;
  checkCompositions(compositions, C);
  const { attributes, values, heldOut } = compositions;
  const group = (held: boolean): AttributeAccuracy | null => {
    let samples = 0;
    let exact = 0;
    const right = attributes.map(() => 0);
    for (let t = 0; t < C; t++) {
      if (heldOut.has(t) !== held) continue;
      const row = confusion[t]!;
      if (row.length !== C) throw new Error(`compositions: confusion row ${t} has ${row.length} entries, not ${C}`);
      for (let p = 0; p < C; p++) {
        const n = row[p]!;
        if (n === 0) continue;
        samples += n;
        if (p === t) exact += n;
        attributes.forEach((_, a) => {
          if (values[p]![a] === values[t]![a]) right[a]! += n;
        });
      }
    }
    if (samples === 0) return null;
    return { samples, exact: exact / samples, attributes: Object.fromEntries(attributes.map((name, a) => [name, right[a]! / samples])) };
  };
  const chance = Object.fromEntries(attributes.map((name, a) => [name, 1 / new Set(values.map((v) => v[a])).size]));
  return { seen: group(false), heldOut: group(true), chance };
}

/** confusion + more, entry by entry (the same classes). */
function addConfusion(a: readonly (readonly number[])[], b: readonly (readonly number[])[]): number[][] {
  return a.map((row, t) => row.map((n, p) => n + b[t]![p]!));
}

export interface CompositionalEvalResult extends CompositionalAccuracy {
  /** The datasets the images came from: the one given, and its seen counterpart where it has one. */
  readonly datasets: readonly string[];
}

/**
 * Zero-shot per-attribute accuracy of a dual encoder on a dataset whose classes are compositions
 * (`dataset.compositions`), with the dataset's seen counterpart where it holds only held-out
 * compositions (scenes:test): the same number of images, the same options. `zeroShot` reuses
 * the dataset's zero-shot result when the caller already has it.
 */
export async function evaluateCompositional(vl: VisionLanguageModel, dataset: Dataset, options: ZeroShotEvalOptions = {},
  zeroShot?: { confusion: readonly (readonly number[])[] }): Promise<CompositionalEvalResult> {
  const compositions = dataset.compositions;
  if (!compositions) throw new Error(`compositional accuracy: ${dataset.name} does not say how its classes compose (only the scenes do)`);
  let confusion = (zeroShot ?? await evaluateZeroShot(vl, dataset, options)).confusion;
  const datasets = [dataset.name];
  const counterpart = compositions.seenCounterpart?.();
  if (counterpart) {
    confusion = addConfusion(confusion, (await evaluateZeroShot(vl, counterpart, options)).confusion);
    datasets.push(counterpart.name);
  }
  return { ...compositionalAccuracy(confusion, compositions), datasets };
}
