// The optimizer base: parameter groups with their own hyperparameters, per-parameter state
// (step count and buffers such as Adam's moments), and a state dict that resumes training
// exactly. Subclasses write one update per parameter with the backend's fused in-place kernels.
import { noGrad } from '../tensor/autograd.js';
import type { DType, TypedArray } from '../tensor/dtype.js';
import { dtypeOfArray, isFloat } from '../tensor/dtype.js';
import { Tensor, tensor, zeros } from '../tensor/tensor.js';

/** The hyperparameters every optimizer has. */
export interface BaseHyper {
  lr: number;
}

/** A group of parameters sharing hyperparameters. */
export type ParamGroup<H extends BaseHyper> = H & {
  params: Tensor[];
  /** The lr an LRScheduler scales, recorded when the first scheduler attaches. */
  initialLr?: number;
};

/** What constructors and addParamGroup take: parameters plus any hyperparameters to override. */
export type ParamGroupSpec<H extends BaseHyper> = Partial<H> & { params: Iterable<Tensor> };

/** Per-parameter state: the number of updates made and the optimizer's buffers. */
export interface ParamState {
  step: number;
  buffers: Record<string, Tensor>;
}

/** A state value saved elsewhere: a Tensor or host data (as loadSafetensors returns). */
export type SavedTensor = Tensor | { readonly shape: readonly number[]; readonly data: TypedArray; readonly dtype?: DType };

export interface OptimizerStateDict {
  /** Keyed by the parameter's position counting through all groups in order ('0', '1', ...). */
  state: Record<string, { step: number; buffers: Record<string, SavedTensor> }>;
  /** Each group's hyperparameters, with its parameters as positions. */
  paramGroups: (Record<string, unknown> & { params: number[] })[];
}

/** True when t owns a dense storage exactly its size, which is what the fused updates write. */
function ownsDenseStorage(t: Tensor): boolean {
  return t.offset === 0 && t.isContiguous() && t.storage.length === t.size;
}

export abstract class Optimizer<H extends BaseHyper> {
  readonly paramGroups: ParamGroup<H>[] = [];
  readonly defaults: Readonly<H>;
  protected readonly state = new Map<Tensor, ParamState>();

  constructor(params: Iterable<Tensor> | Iterable<ParamGroupSpec<H>>, defaults: H) {
    this.defaults = defaults;
    const list = [...params] as (Tensor | ParamGroupSpec<H>)[];
    if (list.length === 0) throw new Error(`${this.constructor.name}: got an empty parameter list`);
    const groups = list.every((x) => x instanceof Tensor) ? [{ params: list as Tensor[] } as unknown as ParamGroupSpec<H>]
      : list.every((x) => !(x instanceof Tensor)) ? (list as ParamGroupSpec<H>[])
      : null;
    if (!groups) throw new Error(`${this.constructor.name}: pass either tensors or parameter groups, not a mix`);
    for (const g of groups) this.addParamGroup(g);
  }

  addParamGroup(spec: ParamGroupSpec<H>): void {
    const params = [...spec.params];
    const taken = new Set(this.paramGroups.flatMap((g) => g.params));
    params.forEach((p, i) => {
      const where = `${this.constructor.name}: parameter ${i} of group ${this.paramGroups.length}`;
      if (!(p instanceof Tensor)) throw new TypeError(`${where} is not a Tensor`);
      if (!isFloat(p.dtype)) throw new TypeError(`${where} is ${p.dtype}; only float tensors can be optimized`);
      if (!p.isLeaf) throw new Error(`${where} [${p.shape}] is not a leaf (it was computed by ${p.gradFn!.op}); optimize the tensors the model owns`);
      if (!ownsDenseStorage(p)) {
        throw new Error(`${where} [${p.shape}] is a view of a larger or strided storage (offset ${p.offset}, strides [${p.strides}]); ` +
          'the fused updates write whole dense storages, so give the model a dense tensor of its own (clone()) instead');
      }
      if (taken.has(p)) throw new Error(`${where} [${p.shape}] appears in more than one place; each parameter may be listed once`);
      taken.add(p);
    });
    const hyper = Object.fromEntries(Object.entries(spec).filter(([k, v]) => k !== 'params' && v !== undefined));
    const group = { ...structuredClone(this.defaults), ...hyper, params } as ParamGroup<H>;
    this.validate(group);
    this.paramGroups.push(group);
  }

  /** Checks a group's hyperparameters; throws with the offending value. */
  protected validate(group: ParamGroup<H>): void {
    if (!(group.lr >= 0)) throw new RangeError(`${this.constructor.name}: lr must be >= 0, got ${group.lr}`);
  }

  /** Drops every gradient (as zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const g of this.paramGroups) for (const p of g.params) p.grad = null;
  }

  /** One update of every parameter that has a gradient; parameters without one are left alone. */
  step(): void {
    noGrad(() => {
      this.paramGroups.forEach((group, gi) => {
        group.params.forEach((p, i) => {
          if (!p.grad) return;
          const grad = this.#denseGrad(p, `${this.constructor.name}: gradient of parameter ${i} of group ${gi}`);
          let st = this.state.get(p);
          if (!st) this.state.set(p, (st = { step: 0, buffers: {} }));
          st.step++;
          this.update(p, grad, group, st);
        });
      });
    });
  }

  /**
   * Updates one parameter in place. `p` and `grad` are dense tensors of equal size and dtype on
   * one backend; state.step already counts this update.
   */
  protected abstract update(p: Tensor, grad: Tensor, group: ParamGroup<H>, state: ParamState): void;

  /** The gradient as a dense storage matching p, copying only when it is not one already. */
  #denseGrad(p: Tensor, where: string): Tensor {
    const g = p.grad!;
    if (g.ndim !== p.ndim || g.shape.some((d, i) => d !== p.shape[i])) throw new Error(`${where} is [${g.shape}], not [${p.shape}]`);
    if (g.dtype === p.dtype && g.backend === p.backend && ownsDenseStorage(g)) return g;
    return g.to(p.backend).to(p.dtype).clone();
  }

  /** A zero buffer like p (dense, same dtype and backend), created on first use. */
  protected buffer(state: ParamState, name: string, p: Tensor): Tensor {
    return (state.buffers[name] ??= zeros(p.shape, { dtype: p.dtype, backend: p.backend }));
  }

  /** A snapshot (buffers are copies) of the optimizer state, to save with a checkpoint. */
  stateDict(): OptimizerStateDict {
    const index = new Map<Tensor, number>();
    const paramGroups = this.paramGroups.map(({ params, ...hyper }) => ({
      ...structuredClone(hyper),
      params: params.map((p) => {
        index.set(p, index.size);
        return index.size - 1;
      }),
    }));
    const state: OptimizerStateDict['state'] = {};
    noGrad(() => {
      for (const [p, st] of this.state) {
        const i = index.get(p);
        if (i === undefined) continue;
        state[String(i)] = { step: st.step, buffers: Object.fromEntries(Object.entries(st.buffers).map(([k, t]) => [k, t.clone()])) };
      }
    });
    return { state, paramGroups };
  }

  /**
   * Restores a stateDict() taken from an optimizer over parameters of the same shapes in the
   * same order: step counts, buffers (copied) and each group's hyperparameters. Nothing changes
   * unless all of it fits.
   */
  loadStateDict(sd: OptimizerStateDict): void {
    const name = this.constructor.name;
    if (sd.paramGroups.length !== this.paramGroups.length) {
      throw new Error(`${name}.loadStateDict: the state has ${sd.paramGroups.length} parameter groups, the optimizer ${this.paramGroups.length}`);
    }
    const params: Tensor[] = [];
    sd.paramGroups.forEach((g, gi) => {
      const own = this.paramGroups[gi]!.params;
      if (g.params.length !== own.length) {
        throw new Error(`${name}.loadStateDict: group ${gi} has ${g.params.length} parameters in the state, ${own.length} in the optimizer`);
      }
      g.params.forEach((pos, i) => (params[pos] = own[i]!));
    });
    const problems: string[] = [];
    for (const [key, st] of Object.entries(sd.state)) {
      const p = params[Number(key)];
      if (!p) {
        problems.push(`state '${key}' names no parameter`);
        continue;
      }
      for (const [b, t] of Object.entries(st.buffers)) {
        if (t.shape.length !== p.ndim || t.shape.some((d, i) => d !== p.shape[i])) {
          problems.push(`state '${key}'.${b} is [${t.shape}] but the parameter is [${p.shape}]`);
        }
      }
    }
    if (problems.length) throw new Error(`${name}.loadStateDict: the state does not fit:\n  ${problems.join('\n  ')}`);
    noGrad(() => {
      this.state.clear();
      for (const [key, st] of Object.entries(sd.state)) {
        const p = params[Number(key)]!;
        const buffers = Object.fromEntries(Object.entries(st.buffers).map(([b, t]) => [b, ownedCopy(t, p)]));
        this.state.set(p, { step: st.step, buffers });
      }
      sd.paramGroups.forEach(({ params: _, ...hyper }, gi) => Object.assign(this.paramGroups[gi]!, structuredClone(hyper)));
    });
  }
}

/** A dense copy of a saved value with p's dtype and backend. */
function ownedCopy(v: SavedTensor, p: Tensor): Tensor {
  const t = v instanceof Tensor ? v : tensor(v.data, { dtype: v.dtype ?? dtypeOfArray(v.data), shape: v.shape, backend: p.backend });
  return zeros(p.shape, { dtype: p.dtype, backend: p.backend }).copy_(t, 'loadStateDict');
}
