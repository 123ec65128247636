// Bicubic resizing as torch.nn.functional.interpolate(mode='bicubic', align_corners=False) does it,
// which is how HF vision models stretch their position-embedding grids to other image sizes.
//
// Along each axis the resize is a fixed linear map, so it is built as an [out, in] matrix and
// applied with matmul: the forward is exact up to summation order, and the gradient comes from
// matmul's (a resize is differentiable with respect to its input).
import { type Tensor, tensor } from '../tensor/tensor.js';

/** PyTorch's cubic convolution kernel constant (upsample_bicubic2d). */
const A = -0.75;

/** Weight of a tap at distance |x| <= 1. */
const near = (x: number): number => ((A + 2) * x - (A + 3)) * x * x + 1;
/** Weight of a tap at distance 1 < |x| < 2. */
const far = (x: number): number => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;

/**
 * The [outSize, inSize] matrix of a 1-D bicubic resize with align_corners=False. Output i samples
 * the input at (i + 0.5) * scale - 0.5, with scale = inSize / outSize (what interpolate uses when
 * given a size), from the four taps around it; taps beyond the borders read the edge sample,
 * so their weights add onto it.
 */
export function bicubicMatrix(inSize: number, outSize: number, scale = inSize / outSize): Float64Array {
  if (!Number.isInteger(inSize) || !Number.isInteger(outSize) || inSize < 1 || outSize < 1) {
    throw new RangeError(`bicubicMatrix: sizes must be positive integers, got ${inSize} -> ${outSize}`);
  }
  const m = new Float64Array(outSize * inSize);
  for (let i = 0; i < outSize; i++) {
    // Not clamped at 0, unlike the linear modes: PyTorch's cubic path keeps the raw coordinate.
    const src = (i + 0.5) * scale - 0.5;
    const base = Math.floor(src);
    const t = src - base;
    const w = [far(t + 1), near(t), near(1 - t), far(2 - t)];
    for (let k = 0; k < 4; k++) {
      const j = Math.min(Math.max(base - 1 + k, 0), inSize - 1);
      m[i * inSize + j]! += w[k]!;
    }
  }
  return m;
}

/**
 * Resizes the last two axes of x [..., H, W] to [outH, outW] with bicubic interpolation, as
 * F.interpolate(x, size=[outH, outW], mode='bicubic', align_corners=False). Differentiable.
 */
export function interpolateBicubic(x: Tensor, size: readonly [number, number]): Tensor {
  if (x.ndim < 2) throw new Error(`interpolateBicubic: input must have at least 2 axes, got [${x.shape}]`);
  const [inH, inW] = x.shape.slice(-2) as [number, number];
  const [outH, outW] = size;
  let y = x;
  if (outH !== inH) y = matrix(bicubicMatrix(inH, outH), outH, inH, x).matmul(y);
  if (outW !== inW) y = y.matmul(matrix(bicubicMatrix(inW, outW), outW, inW, x).transpose(0, 1));
  return y;
}

function matrix(m: Float64Array, rows: number, cols: number, like: Tensor): Tensor {
  const data = like.dtype === 'float64' ? m : Float32Array.from(m);
  return tensor(data, { shape: [rows, cols], dtype: like.dtype, backend: like.backend });
}
