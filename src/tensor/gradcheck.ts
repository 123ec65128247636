// A finite-difference gradient checker (as torch.autograd.gradcheck): autograd's gradients of a
// random projection of fn's output against central differences, in float64 on the reference
// backend, where differences are accurate to ~1e-10.
import { noGrad } from './autograd.js';
import { getBackend } from './device.js';
import { isFloat } from './dtype.js';
import { Generator } from './random.js';
import { type Tensor, tensor } from './tensor.js';
import { hostData } from './backends/host.js';

export interface GradcheckOptions {
  /** Step of the central difference (default 1e-6). */
  eps?: number;
  atol?: number;
  rtol?: number;
  /** Elements probed per input; all of them when the input is smaller (default 12). */
  samples?: number;
  generator?: Generator;
}

/**
 * Checks d/dx sum(fn(...inputs) * w) for a fixed random w against finite differences, for every
 * float input. Inputs are copied to float64 leaves on the reference backend; others (indices)
 * pass through. Throws an error naming the input, the element and both values on a mismatch.
 */
export function gradcheck(fn: (...xs: Tensor[]) => Tensor, inputs: readonly Tensor[], opts: GradcheckOptions = {}): void {
  const ref = getBackend('reference');
  const eps = opts.eps ?? 1e-6;
  const atol = opts.atol ?? 1e-5;
  const rtol = opts.rtol ?? 1e-4;
  const gen = opts.generator ?? new Generator(0);
  const leaves = inputs.map((x) =>
    isFloat(x.dtype) ? tensor(x.to('float64').data(), { shape: x.shape, dtype: 'float64', backend: ref, requiresGrad: true }) : x.to(ref));
  let weights: Tensor | null = null;
  const loss = () => {
    const out = fn(...leaves);
    weights ??= tensor(Float64Array.from({ length: out.size }, () => gen.uniform() * 2 - 1), { shape: out.shape, dtype: 'float64', backend: ref });
    return out.to('float64').mul(weights).sum();
  };
  loss().backward();
  leaves.forEach((leaf, i) => {
    if (!leaf.requiresGrad) return;
    const analytic = leaf.grad ? (leaf.grad.data() as Float64Array) : new Float64Array(leaf.size);
    const data = hostData(leaf.storage) as Float64Array;
    const count = Math.min(leaf.size, opts.samples ?? 12);
    for (let t = 0; t < count; t++) {
      const k = count === leaf.size ? t : gen.int(0, leaf.size);
      const orig = data[k]!;
      const at = (v: number) => {
        data[k] = v;
        const y = noGrad(loss).item();
        data[k] = orig;
        return y;
      };
      const numeric = (at(orig + eps) - at(orig - eps)) / (2 * eps);
      const a = analytic[k]!;
      if (!(Math.abs(a - numeric) <= atol + rtol * Math.abs(numeric))) {
        throw new Error(`gradcheck: d/d(input ${i} [${leaf.shape}])[${k}] is ${a} by autograd but ${numeric} by finite differences`);
      }
    }
  });
}
