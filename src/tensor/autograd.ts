// Tape-based reverse-mode autograd. Every differentiable op calls record() with its inputs and a
// backward rule written next to its forward (see ops/*.ts); backward() walks the recorded graph
// from the output in reverse topological order and accumulates gradients into leaf tensors.
import type { Storage } from './backend.js';
import { adopt, release, withRecycling } from './recycle.js';
import type { Tensor } from './tensor.js';

/** Given dL/d(output), returns dL/d(input) for each input (null where an input needs none). */
export type BackwardRule = (grad: Tensor) => (Tensor | null)[];

export interface GradNode {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  readonly backward: BackwardRule;
}

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn with gradient recording off (as torch.no_grad()). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Marks out as produced by op from inputs when any input needs a gradient; returns out. */
export function record(op: string, inputs: readonly Tensor[], out: Tensor, backward: BackwardRule): Tensor {
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.gradFn = { op, inputs, backward };
  }
  return out;
}

/** What a node becomes once backward has run through it: its saved tensors are released. */
function freedNode(op: string): GradNode {
  return {
    op,
    inputs: [],
    backward: () => {
      throw new Error(`backward: the graph through ${op} was already freed; pass { retainGraph: true } to the first backward`);
    },
  };
}

export interface BackwardOptions {
  /** Keep the graph so backward can run through it again (default false: it is freed). */
  retainGraph?: boolean;
}

/** Computes d(root)/d(leaf) for every leaf that requires a gradient, adding into leaf.grad. */
export function backward(root: Tensor, grad: Tensor, opts: BackwardOptions = {}): void {
  if (!root.requiresGrad) throw new Error('backward: the tensor does not require grad (no input of it has requiresGrad)');
  // Reverse topological order by iterative depth-first search (graphs can be thousands deep).
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const inputs = t.gradFn?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const next = inputs[i]!;
      if (next.requiresGrad && !visited.has(next)) {
        visited.add(next);
        stack.push([next, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  const grads = new Map<Tensor, Tensor>([[root, grad]]);
  // How many pending gradients point at each storage: a consumed gradient whose storage no pending
  // one shares is unreachable, and its storage can serve later allocations (see recycle.ts).
  const pending = new Map<Storage, number>([[grad.storage, 1]]);
  const hold = (g: Tensor) => pending.set(g.storage, (pending.get(g.storage) ?? 0) + 1);
  const drop = (g: Tensor) => {
    const n = pending.get(g.storage)! - 1;
    if (n > 0) {
      pending.set(g.storage, n);
      return;
    }
    pending.delete(g.storage);
    release(g.storage);
  };
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    withRecycling(() => {
      for (let k = order.length - 1; k >= 0; k--) {
        const t = order[k]!;
        const g = grads.get(t);
        if (!g) continue;
        grads.delete(t);
        const node = t.gradFn;
        if (!node) {
          // A dense gradient this pass made, that nothing pending shares, is the leaf's to keep:
          // no copy. Otherwise accumulateGrad copies or adds, keeping none of g's storage.
          const sole = !t.grad && pending.get(g.storage) === 1 && g.offset === 0 && g.storage.length === g.size && g.isContiguous();
          if (sole && adopt(g.storage)) {
            pending.delete(g.storage);
            t.grad = g;
          } else {
            t.accumulateGrad(g);
            drop(g);
          }
          t.runPostAccumulateGradHooks();
          continue;
        }
        if (t.retainsGrad) t.accumulateGrad(g);
        const inputGrads = node.backward(g);
        node.inputs.forEach((input, j) => {
          const gi = inputGrads[j];
          if (!gi || !input.requiresGrad) return;
          if (gi.shape.length !== input.shape.length || gi.shape.some((d, a) => d !== input.shape[a])) {
            throw new Error(`backward of ${node.op}: gradient [${gi.shape}] does not match input [${input.shape}]`);
          }
          const acc = grads.get(input);
          const sum = acc ? acc.add(gi) : gi;
          hold(sum);
          if (acc) {
            // gi is held for the moment, so that dropping acc cannot release a storage gi shares.
            hold(gi);
            drop(acc);
            drop(gi);
          }
          grads.set(input, sum);
        });
        if (!opts.retainGraph) t.gradFn = freedNode(node.op);
        drop(g); // only now: the rule has read g, and what it returned (views of g, maybe) is held
      }
    });
  } finally {
    gradEnabled = prev;
  }
}
