// CLIP's and SigLIP's losses in a data-parallel job, each equal to the single-process loss on the
// global batch (every rank's batch, concatenated in rank order).
//
// Autograd runs synchronously and the communicator returns Promises, so no collective can run
// inside a backward rule. The backward is split instead (as GradCache does): the caller's towers
// produce features with their graph; this module gets detached leaf copies, exchanges them, runs
// this rank's loss and its backward, and sends every feature gradient back to the rank whose
// feature it is. The caller then continues backward through the towers with img.grad / txt.grad.
//
// Gradient bookkeeping. With N ranks and L_r rank r's loss, the global loss is L = (1/N) sum_r L_r.
// A rank's features feed other ranks' losses, so img.grad / txt.grad receive
// d(sum_r L_r)/d(features) = N dL/d(features); backward through the towers then gives
// d(sum_r L_r)/d(theta) from this rank's samples, and DDP's average over ranks gives dL/d(theta).
// The logit scale and bias get only this rank's dL_r/d(param), whose average over ranks is
// dL/d(param).
import { clipContrastiveLoss, contrastiveLogits, infoNceLoss, siglipSigmoidLoss, sigmoidLossSum } from '../nn/losses.js';
import { concat, noGrad, tensor, zeros, type Tensor } from '../tensor/index.js';
import type { Communicator } from './communicator.js';

export interface PairLossParams {
  /** 'clip' (InfoNCE) or 'siglip' (sigmoid). */
  kind: 'clip' | 'siglip';
  /** Log inverse temperature (a parameter; exp taken inside). */
  logitScale: Tensor;
  /** SigLIP's additive bias; null for CLIP. */
  logitBias: Tensor | null;
  /** SigLIP: texts per chunk within each block of texts (siglipSigmoidLoss's chunkSize). */
  chunkSize?: number;
}

const KIND_CODES = { clip: 1, siglip: 2 } as const;

function checkArgs(params: PairLossParams, img: Tensor, txt: Tensor): void {
  const what = 'pairLossAcrossRanks';
  if (params.kind !== 'clip' && params.kind !== 'siglip') throw new Error(`${what}: kind must be 'clip' or 'siglip', got '${String(params.kind)}'`);
  if (params.kind === 'clip' && params.logitBias !== null) throw new Error(`${what}: CLIP's loss has no logit bias; pass logitBias: null`);
  if (params.kind === 'siglip' && params.logitBias === null) throw new Error(`${what}: SigLIP's loss needs its logit bias (logitBias)`);
  if (img.ndim !== 2 || txt.ndim !== 2 || img.shape[0] !== txt.shape[0] || img.shape[1] !== txt.shape[1]) {
    throw new Error(`${what}: image features [${img.shape}] and text features [${txt.shape}] must both be [B, D]`);
  }
  if (img.shape[0] === 0) throw new Error(`${what}: an empty batch`);
  // The image features may be constant: a LiT-locked image tower takes no gradient.
  if (!img.isLeaf || !txt.isLeaf || !txt.requiresGrad) {
    throw new Error(`${what}: the features must be leaves, the text features requiring grad (pass features.detach().setRequiresGrad(), then backward the towers with its .grad)`);
  }
}

/**
 * Every rank must pass the same batch size, feature size and loss kind: the exchanges below assume
 * it, and a mismatch would otherwise hang or garble them. One small allGather per call; every rank
 * sees the same table and so throws the same error.
 */
async function checkSameOnEveryRank(comm: Communicator, kind: PairLossParams['kind'], img: Tensor): Promise<void> {
  const [b, d] = img.shape as [number, number];
  const all = await comm.allGather(tensor([b, d, KIND_CODES[kind]], { dtype: 'int32', backend: img.backend }));
  // Ranks grouped by what they passed, for the message.
  const groups = new Map<string, number[]>();
  all.forEach((t, r) => {
    const [rb, rd, rk] = Array.from(t.data() as Int32Array);
    const name = rk === KIND_CODES.clip ? 'clip' : rk === KIND_CODES.siglip ? 'siglip' : `kind ${rk}`;
    const key = `${name} loss of ${rb} pairs of ${rd} features`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  });
  if (groups.size > 1) {
    const found = [...groups].map(([key, ranks]) => `${ranks.length > 1 ? 'ranks' : 'rank'} ${ranks.join(', ')} a ${key}`).join('; ');
    throw new Error(`pairLossAcrossRanks: every rank must pass the same batch size, feature size and loss kind; ${found}`);
  }
}

/**
 * This rank's share of the global-batch contrastive loss, with its backward done: `img` and `txt` are
 * this rank's L2-normalised features [B, D] as leaves requiring grad (detached from the towers;
 * the image features may be constant, from a locked tower).
 * Returns this rank's loss value (number). The global loss is the mean over ranks of these values;
 * after the call img.grad/txt.grad hold d(sum over ranks of rank losses)/d(this rank's features),
 * and logitScale.grad/logitBias.grad this rank's d(rank loss)/d(param) — so that averaging the
 * parameter gradients over ranks (DDP) gives exactly the gradient of the global loss.
 * With comm null or a world of one it is the single-process loss and backward.
 *
 * img.grad and txt.grad are replaced; the parameters' gradients accumulate, as backward does.
 * Every rank must call it with the same B, D and kind (checked: every rank throws otherwise).
 * Across ranks the features must be float32 in host memory.
 *
 * CLIP (open_clip's gather_with_grad with local_loss): features are all-gathered; this rank scores
 * its B images against all N*B texts and its B texts against all images (memory linear in the
 * global batch), and the gradients of the gathered features are reduce-scattered (summed) back.
 *
 * SigLIP (open_clip's neighbour exchange): texts travel around the ring of ranks, both ways at once
 * (one way for the last step when N-1 is odd), never all-gathered; this rank's images meet every
 * block of texts once, and each block's gradient travels back the way the block came.
 */
export async function pairLossAcrossRanks(comm: Communicator | null, params: PairLossParams, img: Tensor, txt: Tensor): Promise<number> {
  checkArgs(params, img, txt);
  img.zeroGrad();
  txt.zeroGrad();
  if (!comm || comm.worldSize === 1) {
    const loss = params.kind === 'clip'
      ? clipContrastiveLoss(img, txt, params.logitScale)
      : siglipSigmoidLoss(img, txt, params.logitScale, params.logitBias!, { chunkSize: params.chunkSize });
    loss.backward();
    return loss.item();
  }
  if (img.dtype !== 'float32' || txt.dtype !== 'float32') {
    throw new Error(`pairLossAcrossRanks: features must be float32 to be exchanged between ranks, got ${img.dtype} and ${txt.dtype}`);
  }
  await checkSameOnEveryRank(comm, params.kind, img);
  return params.kind === 'clip' ? clipAcrossRanks(comm, params.logitScale, img, txt) : siglipAcrossRanks(comm, params, img, txt);
}

async function clipAcrossRanks(comm: Communicator, logitScale: Tensor, img: Tensor, txt: Tensor): Promise<number> {
  const [b, d] = img.shape as [number, number];
  // One gather of [B, 2D] rows rather than two: half the collectives' latency.
  const pairs = noGrad(() => concat([img.detach(), txt.detach()], 1).contiguous());
  const gathered = await comm.allGather(pairs);
  const all = noGrad(() => concat(gathered, 0));
  const allImg = noGrad(() => all.slice(1, 0, d).contiguous()).setRequiresGrad(img.requiresGrad);
  const allTxt = noGrad(() => all.slice(1, d, 2 * d).contiguous()).setRequiresGrad();
  // This rank's rows are rows rank*B .. rank*B + B of the global batch.
  const offset = comm.rank * b;
  const loss = infoNceLoss(contrastiveLogits(img, allTxt, logitScale), offset)
    .add(infoNceLoss(contrastiveLogits(txt, allImg, logitScale), offset))
    .mul(0.5);
  const value = loss.item();
  loss.backward();
  // Every rank's loss has a gradient for every rank's features as columns: summing them over ranks
  // and giving each rank its own rows is one reduce-scatter.
  const columnGrads = noGrad(() => concat([allImg.grad ?? zeros(allImg.shape), allTxt.grad ?? zeros(allTxt.shape)], 1).contiguous());
  const mine = await comm.reduceScatter(columnGrads, 'sum');
  if (img.requiresGrad) img.accumulateGrad(noGrad(() => mine.slice(1, 0, d)));
  txt.accumulateGrad(noGrad(() => mine.slice(1, d, 2 * d)));
  return value;
}

async function siglipAcrossRanks(comm: Communicator, params: PairLossParams, img: Tensor, txt: Tensor): Promise<number> {
  const [b, d] = img.shape as [number, number];
  const n = comm.worldSize;
  const right = (comm.rank + 1) % n;
  const left = (comm.rank + n - 1) % n;
  // Each block's terms are backpropagated as soon as they are made, so only one block's logits
  // [B, B] are alive at a time; the sum of the blocks' gradients is the gradient of their sum.
  const block = (texts: Tensor, positives: boolean): number => {
    const part = sigmoidLossSum(img, texts, params.logitScale, params.logitBias!, { chunkSize: params.chunkSize, positives }).div(b);
    const value = part.item();
    part.backward();
    return value;
  };
  const buffer = (): Tensor => zeros([b, d], { backend: img.backend });
  const send = (t: Tensor): Tensor => noGrad(() => t.detach().contiguous());

  let loss = block(txt, true);
  // Texts from the left travel right, texts from the right travel left: after `bothWays` steps in
  // both directions (and one more rightwards when N-1 is odd) every rank has seen every other
  // rank's texts exactly once. fromLeft[k] came from rank - k - 1, fromRight[k] from rank + k + 1.
  const bothWays = Math.floor((n - 1) / 2);
  const steps = bothWays + ((n - 1) % 2);
  const fromLeft: Tensor[] = [];
  const fromRight: Tensor[] = [];
  let toRight = send(txt);
  let toLeft = toRight;
  for (let k = 0; k < steps; k++) {
    const l = buffer();
    const r = k < bothWays ? buffer() : null;
    await Promise.all([comm.sendRecv(toRight, right, l, left), r && comm.sendRecv(toLeft, left, r, right)]);
    loss += block(l.setRequiresGrad(), false);
    fromLeft.push(l);
    toRight = l;
    if (r) {
      loss += block(r.setRequiresGrad(), false);
      fromRight.push(r);
      toLeft = r;
    }
  }

  // Gradients return the opposite way, one step at a time from the last: the block received from
  // the left at step k goes back left with its own gradient plus the gradient that the right
  // neighbour returned for it (this rank forwarded it there at step k + 1); likewise mirrored.
  let returnedFromRight: Tensor | null = null;
  let returnedFromLeft: Tensor | null = null;
  const gradOf = (t: Tensor, returned: Tensor | null): Tensor =>
    noGrad(() => {
      const g = t.grad ?? zeros(t.shape, { backend: t.backend });
      return (returned ? g.add(returned) : g).contiguous();
    });
  for (let k = steps - 1; k >= 0; k--) {
    const backRight = buffer();
    const backLeft = k < bothWays ? buffer() : null;
    await Promise.all([
      comm.sendRecv(gradOf(fromLeft[k]!, returnedFromRight), left, backRight, right),
      backLeft && comm.sendRecv(gradOf(fromRight[k]!, returnedFromLeft), right, backLeft, left),
    ]);
    returnedFromRight = backRight;
    returnedFromLeft = backLeft;
  }
  // What came back at the first step is the gradient of the other ranks' losses for this rank's texts.
  if (returnedFromRight) txt.accumulateGrad(returnedFromRight);
  if (returnedFromLeft) txt.accumulateGrad(returnedFromLeft);
  return loss;
}
