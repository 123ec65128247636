// What the parity runner needs of a model family: how to load a fixture's checkpoint and run it.
import type { Backend } from '../../tensor/backend.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { Module } from '../../nn/module.js';

/** A model loaded for a fixture, behind what the runner needs of it. */
export interface FixtureModel {
  module: Module;
  /** Runs the forward on the fixture inputs; returns the outputs by fixture name and the loss, if any. */
  run(inputs: Record<string, Tensor>, meta: FixtureMeta): { outputs: Record<string, Tensor>; loss: Tensor | null };
  /** Module key of a parameter named as HF does (either of its layouts). */
  moduleKey(hfName: string): string;
  /** HF checkpoint name of a module key. */
  hfName(moduleKey: string): string;
}

export interface Family {
  name: string;
  matches(modelType: string): boolean;
  architectures: readonly string[];
  load(dir: string, architecture: string, backend: Backend): FixtureModel;
}

export interface FixtureMeta {
  class?: string;
  inputs?: Record<string, number[]>;
  outputs?: Record<string, number[]>;
  loss_fn?: string;
  interpolate_pos_encoding?: boolean;
  [k: string]: unknown;
}

/** The pixel_values input of a fixture, or an error naming what is missing. */
export function pixelsOf(inputs: Record<string, Tensor>): Tensor {
  const p = inputs.pixel_values;
  if (!p) throw new Error('parity: inputs.safetensors has no pixel_values');
  return p;
}
