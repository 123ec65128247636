// Module: the base class of layers and models. A module owns named parameters (trainable leaf
// tensors), buffers (state saved with the model but not trained) and child modules. They are
// registered explicitly, under the names checkpoints use, which are often not the TypeScript
// field names:
//
//   this.qProj = this.module('q_proj', new Linear(dim, dim));
//   this.weight = this.param('weight', zeros([n]));
//
// Dotted paths through the tree name everything as PyTorch does
// ('encoder.layers.0.self_attn.q_proj.weight').
import type { Backend } from '../tensor/backend.js';
import { noGrad } from '../tensor/autograd.js';
import type { DType, TypedArray } from '../tensor/dtype.js';
import { dtypeOfArray, isFloat } from '../tensor/dtype.js';
import type { Generator } from '../tensor/random.js';
import { type Shape, Tensor, tensor, zeros } from '../tensor/tensor.js';

/** What module constructors take: where initial weights are drawn from, their dtype and backend. */
export interface ModuleOptions {
  /**
   * Source of the initial weights (and of dropout masks, where a module has dropout). Default:
   * the global generator seeded by manualSeed, looked up at construction for weights and at
   * each call for dropout.
   */
  generator?: Generator;
  /** Default float32. */
  dtype?: DType;
  backend?: Backend;
  /**
   * Draw the default initial weights (default true). false leaves parameters at their zero or
   * one defaults: for a model whose weights all come from a checkpoint or its own init scheme.
   */
  init?: boolean;
}

/** A zero-filled tensor for a parameter or buffer, as the options say. */
export function paramZeros(shape: Shape, opts: ModuleOptions = {}): Tensor {
  return zeros(shape, { dtype: opts.dtype ?? 'float32', backend: opts.backend });
}

/** A state-dict value: a Tensor, or host data such as loadSafetensors returns. */
export type StateValue = Tensor | { readonly shape: readonly number[]; readonly data: TypedArray; readonly dtype?: DType };
export type StateDict = Record<string, StateValue>;

export interface LoadStateDictOptions {
  /** Missing and unexpected keys are an error (default true). Shape mismatches always are. */
  strict?: boolean;
}

export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

/** A state dict that does not fit the module; every offending key is listed. */
export class StateDictError extends Error {
  constructor(
    readonly missingKeys: readonly string[],
    readonly unexpectedKeys: readonly string[],
    /** 'name: checkpoint [..] vs model [..]' for each shape mismatch. */
    readonly mismatchedKeys: readonly string[],
  ) {
    const parts: string[] = [];
    const list = (what: string, keys: readonly string[]) => {
      if (keys.length) parts.push(`${keys.length} ${what}${keys.length === 1 ? '' : 's'}:\n    ${keys.join('\n    ')}`);
    };
    list('missing key', missingKeys);
    list('unexpected key', unexpectedKeys);
    list('shape mismatch', mismatchedKeys);
    super(`loadStateDict: the state dict does not fit the module\n  ${parts.join('\n  ')}`);
    this.name = 'StateDictError';
  }
}

/** A module that maps one tensor to one tensor (what Sequential chains). */
export interface Layer {
  forward(x: Tensor): Tensor;
}

interface BufferEntry {
  tensor: Tensor;
  persistent: boolean;
}

export class Module {
  /** True in training mode (dropout active); set for the whole tree by train() / eval(). */
  training = true;
  readonly #params = new Map<string, Tensor>();
  readonly #buffers = new Map<string, BufferEntry>();
  readonly #children = new Map<string, Module>();

  // ---- registration ----

  /** Registers t as the trainable parameter `name` (a leaf with requiresGrad) and returns it. */
  param(name: string, t: Tensor): Tensor {
    this.#checkName(name);
    if (!isFloat(t.dtype)) throw new TypeError(`${this.constructor.name}.param('${name}'): parameters must be float, got ${t.dtype}`);
    const p = t.isLeaf ? t : t.detach();
    p.setRequiresGrad(true);
    this.#params.set(name, p);
    return p;
  }

  /**
   * Registers t as the buffer `name`: module state that is not trained. Persistent buffers are
   * part of the state dict; non-persistent ones (derived data such as position ids) are not.
   */
  buffer(name: string, t: Tensor, persistent = true): Tensor {
    this.#checkName(name);
    const b = t.requiresGrad ? t.detach() : t;
    this.#buffers.set(name, { tensor: b, persistent });
    return b;
  }

  /** Registers m as the child `name` and returns it. */
  module<M extends Module>(name: string, m: M): M {
    this.#checkName(name);
    if (!(m instanceof Module)) throw new TypeError(`${this.constructor.name}.module('${name}'): not a Module`);
    if (m.namedModules().some(([, sub]) => sub === this)) {
      throw new Error(`${this.constructor.name}.module('${name}'): the module contains this one (a cycle)`);
    }
    this.#children.set(name, m);
    return m;
  }

  #checkName(name: string): void {
    if (name === '' || name.includes('.')) throw new Error(`${this.constructor.name}: invalid name '${name}' (non-empty, no dots)`);
    if (this.#params.has(name) || this.#buffers.has(name) || this.#children.has(name)) {
      throw new Error(`${this.constructor.name}: '${name}' is already registered`);
    }
  }

  // ---- traversal ----

  /** Direct children with their names. */
  namedChildren(): [string, Module][] {
    return [...this.#children];
  }

  children(): Module[] {
    return [...this.#children.values()];
  }

  /** This module ('' or prefix) and every module below it, depth-first; a shared module appears once. */
  namedModules(prefix = ''): [string, Module][] {
    return this.#modulesUnder(prefix, new Set());
  }

  #modulesUnder(prefix: string, seen: Set<Module> | null): [string, Module][] {
    const out: [string, Module][] = [];
    const visit = (m: Module, path: string) => {
      if (seen) {
        if (seen.has(m)) return;
        seen.add(m);
      }
      out.push([path, m]);
      for (const [name, child] of m.#children) visit(child, path ? `${path}.${name}` : name);
    };
    visit(this, prefix);
    return out;
  }

  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  /**
   * Every parameter with its dotted name, in registration order, depth-first. A parameter
   * shared by several modules (tied weights) is listed once, under its first name.
   */
  namedParameters(prefix = ''): [string, Tensor][] {
    const seen = new Set<Tensor>();
    const out: [string, Tensor][] = [];
    for (const [path, m] of this.namedModules(prefix)) {
      for (const [name, p] of m.#params) {
        if (seen.has(p)) continue;
        seen.add(p);
        out.push([path ? `${path}.${name}` : name, p]);
      }
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Every buffer (persistent or not) with its dotted name; shared buffers are listed once. */
  namedBuffers(prefix = ''): [string, Tensor][] {
    const seen = new Set<Tensor>();
    const out: [string, Tensor][] = [];
    for (const [path, m] of this.namedModules(prefix)) {
      for (const [name, b] of m.#buffers) {
        if (seen.has(b.tensor)) continue;
        seen.add(b.tensor);
        out.push([path ? `${path}.${name}` : name, b.tensor]);
      }
    }
    return out;
  }

  buffers(): Tensor[] {
    return this.namedBuffers().map(([, b]) => b);
  }

  /** The module at a dotted path ('' is this one). */
  getSubmodule(path: string): Module {
    let m: Module = this;
    if (path === '') return m;
    for (const part of path.split('.')) {
      const next = m.#children.get(part);
      if (!next) throw new Error(`${this.constructor.name}: no submodule '${path}' (${m.constructor.name} has no child '${part}')`);
      m = next;
    }
    return m;
  }

  /** The parameter at a dotted path. */
  getParameter(path: string): Tensor {
    const dot = path.lastIndexOf('.');
    const owner = this.getSubmodule(dot < 0 ? '' : path.slice(0, dot));
    const p = owner.#params.get(path.slice(dot + 1));
    if (!p) throw new Error(`${this.constructor.name}: no parameter '${path}'`);
    return p;
  }

  /** Calls fn on every module below this one and then on this one (as torch's Module.apply). */
  apply(fn: (m: Module) => void): this {
    for (const [, m] of this.namedModules().reverse()) fn(m);
    return this;
  }

  // ---- state ----

  /**
   * Parameters and persistent buffers by dotted name, as detached tensors that share the
   * module's storage (clone them to keep a snapshot). Tied weights appear under every name,
   * as in PyTorch.
   */
  stateDict(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [name, t] of this.#stateEntries()) out[name] = t.detach();
    return out;
  }

  #stateEntries(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [path, m] of this.#modulesUnder('', null)) {
      const at = (name: string) => (path ? `${path}.${name}` : name);
      for (const [name, p] of m.#params) out.set(at(name), p);
      for (const [name, b] of m.#buffers) if (b.persistent) out.set(at(name), b.tensor);
    }
    return out;
  }

  /**
   * Copies the values of `dict` into the module's existing parameters and buffers (converting
   * dtype and backend as needed), so optimizers holding those tensors keep working. Nothing is
   * copied unless the whole dict fits: shape mismatches are always an error, missing and
   * unexpected keys when strict (the default). The error lists every offending key.
   */
  loadStateDict(dict: StateDict, opts: LoadStateDictOptions = {}): LoadStateDictResult {
    const strict = opts.strict ?? true;
    const own = this.#stateEntries();
    const missingKeys = [...own.keys()].filter((k) => !Object.hasOwn(dict, k));
    const unexpectedKeys = Object.keys(dict).filter((k) => !own.has(k));
    const mismatched: string[] = [];
    for (const [key, target] of own) {
      if (!Object.hasOwn(dict, key)) continue;
      const shape = dict[key]!.shape;
      if (shape.length !== target.ndim || shape.some((d, i) => d !== target.shape[i])) {
        mismatched.push(`${key}: checkpoint [${shape}] vs model [${target.shape}]`);
      }
    }
    if (mismatched.length || (strict && (missingKeys.length || unexpectedKeys.length))) {
      throw new StateDictError(missingKeys, unexpectedKeys, mismatched);
    }
    noGrad(() => {
      for (const [key, target] of own) {
        if (Object.hasOwn(dict, key)) copyInto(target, dict[key]!);
      }
    });
    return { missingKeys, unexpectedKeys };
  }

  // ---- modes and gradients ----

  /** Sets training mode on this module and every module below it. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /**
   * Sets requiresGrad on every parameter, or only on those under the given dotted prefixes (a
   * prefix matches a name equal to it or continuing with '.'); a prefix matching nothing is an
   * error. Freezing also drops gradients already accumulated, so an optimizer that holds the
   * parameter leaves it alone.
   */
  requiresGrad_(flag = true, prefixes?: string | readonly string[]): this {
    const list = prefixes === undefined ? null : typeof prefixes === 'string' ? [prefixes] : prefixes;
    const used = new Set<string>();
    for (const [name, p] of this.namedParameters()) {
      const hit = list === null ? '' : list.find((pre) => name === pre || name.startsWith(`${pre}.`));
      if (hit === undefined) continue;
      used.add(hit);
      p.setRequiresGrad(flag);
      if (!flag) p.grad = null;
    }
    const unused = list?.filter((pre) => !used.has(pre)) ?? [];
    if (unused.length) throw new Error(`requiresGrad_: no parameter under ${unused.map((u) => `'${u}'`).join(', ')}`);
    return this;
  }

  /** Drops every parameter's gradient (as zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }

  /** The number of parameter elements (shared parameters counted once). */
  numParameters(opts: { trainableOnly?: boolean } = {}): number {
    let n = 0;
    for (const p of this.parameters()) if (!opts.trainableOnly || p.requiresGrad) n += p.size;
    return n;
  }
}

function copyInto(dst: Tensor, v: StateValue): void {
  let src: Tensor;
  if (v instanceof Tensor) src = v.backend === dst.backend ? v : v.to(dst.backend);
  else src = tensor(v.data, { dtype: v.dtype ?? dtypeOfArray(v.data), shape: v.shape, backend: dst.backend });
  dst.copy_(src, 'loadStateDict');
}

/** A list of modules registered as children '0', '1', ... (as torch.nn.ModuleList). */
export class ModuleList<M extends Module = Module> extends Module implements Iterable<M> {
  readonly #items: M[] = [];

  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.push(m);
  }

  push(m: M): this {
    this.#items.push(this.module(String(this.#items.length), m));
    return this;
  }

  /** The i-th module; negative i counts from the end. */
  get(i: number): M {
    const k = i < 0 ? i + this.#items.length : i;
    const m = this.#items[k];
    if (!Number.isInteger(i) || m === undefined) throw new RangeError(`ModuleList: index ${i} out of range for ${this.#items.length} modules`);
    return m;
  }

  get length(): number {
    return this.#items.length;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.#items[Symbol.iterator]();
  }
}

/** Layers applied in order, registered as '0', '1', ... (as torch.nn.Sequential). */
export class Sequential extends ModuleList<Module & Layer> implements Layer {
  forward(x: Tensor): Tensor {
    for (const m of this) x = m.forward(x);
    return x;
  }
}
