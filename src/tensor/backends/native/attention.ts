// Wrapper of native/attention.cc. Returns false for cases the native kernels do not take:
// non-float32 tensors, or a q/k/v/gOut whose last axis is not contiguous.
import type { AttentionArgs, Storage, View } from '../../backend.js';
import { hostData, viewData } from '../host.js';
import type { Addon } from './addon.js';

function usable(v: View, rank: number): boolean {
  return v.storage.dtype === 'float32' && v.shape.length === rank && (v.strides[rank - 1] === 1 || v.shape[rank - 1]! <= 1);
}

/** The key-padding mask as dense bytes, 1 = the key may be attended to. */
function keyOkBytes(mask: View, B: number, Tk: number): Uint8Array {
  const data = viewData(mask);
  const [s0, s1] = mask.strides as [number, number];
  const lo = mask.offset + Math.min(0, (B - 1) * s0) + Math.min(0, (Tk - 1) * s1);
  const hi = mask.offset + Math.max(0, (B - 1) * s0) + Math.max(0, (Tk - 1) * s1);
  if (B * Tk > 0 && (lo < 0 || hi >= data.length)) {
    throw new RangeError(`attention: keyPadding view [${mask.shape}] reaches outside its storage of ${data.length} elements`);
  }
  const out = new Uint8Array(B * Tk);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < Tk; j++) {
      const x = data[mask.offset + b * s0 + j * s1]!;
      // NaN counts as nonzero, as a cast to bool would.
      out[b * Tk + j] = x === 0 || x === 0n ? 0 : 1;
    }
  }
  return out;
}

/** The arguments both native kernels share, or null when the native kernels cannot take them. */
function commonArgs(args: AttentionArgs): unknown[] | null {
  const { q, k, v } = args;
  if (!usable(q, 4) || !usable(k, 4) || !usable(v, 4)) return null;
  const [B, H, Tq, D] = q.shape as [number, number, number, number];
  const Tk = k.shape[2]!;
  const Dv = v.shape[3]!;
  if (k.shape[0] !== B || k.shape[1] !== H || k.shape[3] !== D || v.shape[0] !== B || v.shape[1] !== H || v.shape[2] !== Tk) {
    throw new Error(`attention: q [${q.shape}], k [${k.shape}], v [${v.shape}] do not fit together`);
  }
  const pad = args.keyPadding;
  if (pad && (pad.shape.length !== 2 || pad.shape[0] !== B || pad.shape[1] !== Tk)) return null;
  const keyOk = pad ? keyOkBytes(pad, B, Tk) : null;
  const strides3 = (x: View) => x.strides.slice(0, 3);
  return [
    viewData(q), q.offset, strides3(q), viewData(k), k.offset, strides3(k), viewData(v), v.offset, strides3(v),
    keyOk, [B, H, Tq, Tk, D, Dv], args.causal, args.scale,
  ];
}

export function attention(addon: Addon, args: AttentionArgs, out: Storage, lse: Storage): boolean {
  if (out.dtype !== 'float32' || lse.dtype !== 'float32') return false;
  const common = commonArgs(args);
  if (!common) return false;
  addon.attentionForward!(...common, hostData(out), hostData(lse));
  return true;
}

/** `out` is not needed: the row sums of dO * O are recomputed as rowsum(P * dP). */
export function attentionGrad(addon: Addon, args: AttentionArgs, _out: View, lse: View, gOut: View,
  dq: Storage, dk: Storage, dv: Storage): boolean {
  if (lse.storage.dtype !== 'float32' || lse.shape.length !== 3 || !usable(gOut, 4)) return false;
  if (dq.dtype !== 'float32' || dk.dtype !== 'float32' || dv.dtype !== 'float32') return false;
  const common = commonArgs(args);
  if (!common) return false;
  const [B, H, Tq] = args.q.shape as [number, number, number];
  const Dv = args.v.shape[3]!;
  const want = (x: View, shape: number[], what: string) => {
    if (x.shape.length !== shape.length || x.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`attentionGrad: ${what} is [${x.shape}], expected [${shape}]`);
    }
  };
  want(lse, [B, H, Tq], 'lse');
  want(gOut, [B, H, Tq, Dv], 'gOut');
  addon.attentionBackward!(...common, viewData(lse), lse.offset, [...lse.strides], viewData(gOut), gOut.offset,
    gOut.strides.slice(0, 3), hostData(dq), hostData(dk), hostData(dv));
  return true;
}
