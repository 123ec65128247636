// Learning-rate schedules as pure functions of the step, returning a factor of each group's
// base lr, and a scheduler that applies one to an optimizer.
import type { BaseHyper, Optimizer } from './optimizer.js';

/** Step (0 before the first update) -> factor of the base lr. */
export type LrSchedule = (step: number) => number;

export interface WarmupCosineOptions {
  /** Linear warm-up from 0 over this many steps; default 0. */
  warmupSteps?: number;
  /** The step at which the decay ends; the factor stays at minLrRatio after it. */
  totalSteps: number;
  /** The final factor (min lr / base lr); default 0. */
  minLrRatio?: number;
}

/**
 * Linear warm-up (step / warmupSteps, as HF's schedules: 0 at step 0) then half a cosine
 * from 1 down to minLrRatio at totalSteps.
 */
export function warmupCosineSchedule(opts: WarmupCosineOptions): LrSchedule {
  const warmup = opts.warmupSteps ?? 0;
  const total = opts.totalSteps;
  const min = opts.minLrRatio ?? 0;
  if (!(warmup >= 0) || !(total >= warmup)) throw new RangeError(`warmupCosineSchedule: need 0 <= warmupSteps <= totalSteps, got ${warmup} and ${total}`);
  return (step) => (step < warmup ? step / warmup : cosineDecay(total > warmup ? (step - warmup) / (total - warmup) : 1, min));
}

/** Half a cosine from 1 at progress 0 down to minLrRatio at progress 1 (and after it). */
export function cosineDecay(progress: number, minLrRatio = 0): number {
  const p = Math.min(1, Math.max(0, progress));
  return minLrRatio + (1 - minLrRatio) * 0.5 * (1 + Math.cos(Math.PI * p));
}

/** 1 throughout, after an optional linear warm-up from 0. */
export function constantSchedule(opts: { warmupSteps?: number } = {}): LrSchedule {
  const warmup = opts.warmupSteps ?? 0;
  return (step) => (step < warmup ? step / warmup : 1);
}

/** gamma^floor(step / stepSize), as torch's StepLR. */
export function stepSchedule(opts: { stepSize: number; gamma?: number }): LrSchedule {
  const gamma = opts.gamma ?? 0.1;
  if (!(opts.stepSize >= 1)) throw new RangeError(`stepSchedule: stepSize must be >= 1, got ${opts.stepSize}`);
  return (step) => gamma ** Math.floor(step / opts.stepSize);
}

export interface LRSchedulerState {
  step: number;
  baseLrs: number[];
}

/**
 * Sets every group's lr to its base lr times schedule(step). The base lr is the group's lr
 * when the first scheduler attaches (kept in group.initialLr). Construction applies step 0;
 * call step() after each optimizer.step().
 */
export class LRScheduler {
  #step = 0;
  readonly baseLrs: number[];

  constructor(readonly optimizer: Optimizer<BaseHyper>, readonly schedule: LrSchedule) {
    this.baseLrs = optimizer.paramGroups.map((g) => (g.initialLr ??= g.lr));
    this.#apply();
  }

  /** Updates made so far (the step the current lrs belong to). */
  get currentStep(): number {
    return this.#step;
  }

  step(): void {
    this.#step++;
    this.#apply();
  }

  /** The lrs now set, per group. */
  lastLr(): number[] {
    return this.optimizer.paramGroups.map((g) => g.lr);
  }

  #apply(): void {
    const f = this.schedule(this.#step);
    this.optimizer.paramGroups.forEach((g, i) => (g.lr = this.baseLrs[i]! * f));
  }

  stateDict(): LRSchedulerState {
    return { step: this.#step, baseLrs: [...this.baseLrs] };
  }

  loadStateDict(sd: LRSchedulerState): void {
    if (sd.baseLrs.length !== this.baseLrs.length) {
      throw new Error(`LRScheduler.loadStateDict: ${sd.baseLrs.length} base lrs for ${this.baseLrs.length} groups`);
    }
    this.#step = sd.step;
    sd.baseLrs.forEach((lr, i) => {
      this.baseLrs[i] = lr;
      this.optimizer.paramGroups[i]!.initialLr = lr;
    });
    this.#apply();
  }
}
