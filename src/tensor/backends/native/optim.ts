// Wrapper of native/optim.cc. Returns false for cases the native kernels do not take (storages
// that are not float32). The native updates are bit-identical to the reference backend's.
import type { AdamWStep, SgdStep, Storage } from '../../backend.js';
import { hostData } from '../host.js';
import type { Addon } from './addon.js';

export function adamw(addon: Addon, param: Storage, grad: Storage, m: Storage, v: Storage, hp: AdamWStep): boolean {
  if (param.dtype !== 'float32' || grad.dtype !== 'float32' || m.dtype !== 'float32' || v.dtype !== 'float32') return false;
  addon.adamw!(hostData(param), hostData(grad), hostData(m), hostData(v), hp.lr, hp.beta1, hp.beta2, hp.eps,
    hp.weightDecay, hp.biasCorrection1, hp.biasCorrection2);
  return true;
}

export function sgd(addon: Addon, param: Storage, grad: Storage, momentumBuf: Storage | null, hp: SgdStep): boolean {
  if (param.dtype !== 'float32' || grad.dtype !== 'float32' || (momentumBuf && momentumBuf.dtype !== 'float32')) return false;
  addon.sgd!(hostData(param), hostData(grad), momentumBuf ? hostData(momentumBuf) : null, hp.lr, hp.momentum,
    hp.dampening, hp.weightDecay, hp.nesterov, hp.firstStep);
  return true;
}
