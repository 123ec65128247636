// SGEMM throughput of the native backend against PyTorch (OpenBLAS) on the same machine, same run.
//   npm run bench -- gemm [--rounds R] [--repeats N] [--threads T]
// Each round times every shape on Glimpse, then on PyTorch; a shape's figure is the best round's
// median, so a burst of load from other processes during one round does not decide the result.
import { spawnSync } from 'node:child_process';
import type { View } from '../src/tensor/backend.js';
import { createNativeBackend } from '../src/tensor/backends/native.js';
import { loadAddon } from '../src/tensor/backends/native/addon.js';
import { flag, timeIt } from './lib/timing.js';

// M, K, N, and whether B is a row-major weight W [N, K] read transposed (x @ W^T, a linear layer).
const SHAPES: [number, number, number, boolean][] = [
  [512, 512, 512, false],
  [1024, 1024, 1024, false],
  [2048, 2048, 2048, false],
  [800, 768, 768, false],
  [800, 768, 3072, false],
  [800, 3072, 768, false],
  // ViT-B/32 at batch 1: 50 tokens through the linear layers
  [50, 768, 2304, true],
  [50, 768, 3072, true],
  [50, 3072, 768, true],
];

const TORCH_SCRIPT = `
import json, sys, time
import torch
threads, repeats, shapes = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
torch.set_num_threads(threads)
res = []
for m, k, n, trans_b in shapes:
    a = torch.randn(m, k)
    b = torch.randn(n, k).t() if trans_b else torch.randn(k, n)
    out = torch.empty(m, n)
    torch.mm(a, b, out=out)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        ts.append(time.perf_counter() - t0)
    ts.sort()
    res.append(2.0 * m * n * k / ts[len(ts) // 2] / 1e9)
# Debian's torch takes whichever libblas.so.3 is installed: OpenBLAS, or the slow reference BLAS.
with open("/proc/self/maps") as f:
    blas = "OpenBLAS" if "openblas" in f.read().lower() else "not OpenBLAS (install libopenblas0-pthread)"
print(json.dumps({"version": torch.__version__, "blas": blas, "gflops": res}))
`;

interface TorchRound { version: string; blas: string; gflops: number[] }

function torchRound(threads: number, repeats: number): TorchRound | string {
  const argv = ['-c', TORCH_SCRIPT, String(threads), String(repeats), JSON.stringify(SHAPES)];
  const r = spawnSync('/usr/bin/python3', argv, {
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.error) return `could not run /usr/bin/python3: ${r.error.message}`;
  if (r.status !== 0) return `PyTorch unavailable: ${(r.stderr || '').trim().split('\n').pop()}`;
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as TorchRound;
}

export async function run(args: string[]): Promise<object> {
  const rounds = flag(args, '--rounds', 5);
  const repeats = flag(args, '--repeats', 5);
  const backend = createNativeBackend();
  const addon = loadAddon();
  if (!backend || !addon) throw new Error('bench gemm: the native addon is not built');
  const threads = flag(args, '--threads', 2);
  if ((addon.numThreads!() as number) !== threads) addon.setNumThreads!(threads);

  const problems = SHAPES.map(([m, k, n, transB]) => {
    const a = new Float32Array(m * k).map(() => Math.random() - 0.5);
    const b = new Float32Array(k * n).map(() => Math.random() - 0.5);
    const av: View = { storage: backend.fromHost(a, 'float32'), offset: 0, shape: [1, m, k], strides: [m * k, k, 1] };
    const bv: View = {
      storage: backend.fromHost(b, 'float32'), offset: 0, shape: [1, k, n], strides: transB ? [k * n, 1, k] : [k * n, n, 1],
    };
    const out = backend.alloc('float32', m * n);
    return { flop: 2 * m * n * k, run: () => backend.matmul(av, bv, out) };
  });

  const glimpseBest = SHAPES.map(() => 0);
  const torchBest = SHAPES.map(() => 0);
  let torchVersion: string | null = null;
  let torchBlas: string | null = null;
  let torchNote: string | null = null;
  for (let r = 0; r < rounds; r++) {
    problems.forEach((p, i) => {
      const gf = p.flop / timeIt(p.run, { repeats, warmup: 1 }) / 1e9;
      glimpseBest[i] = Math.max(glimpseBest[i]!, gf);
    });
    if (torchNote === null) {
      const t = torchRound(threads, repeats);
      if (typeof t === 'string') {
        torchNote = t;
      } else {
        torchVersion = t.version;
        torchBlas = t.blas;
        t.gflops.forEach((g, i) => (torchBest[i] = Math.max(torchBest[i]!, g)));
      }
    }
  }

  const round1 = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
  return {
    bench: 'gemm',
    unit: 'GFLOP/s (float32, row-major, median of repeats, best of rounds)',
    threads,
    avx2: addon.hasAvx2Fma!() as boolean,
    avx512f: addon.hasAvx512f!() as boolean,
    rounds,
    repeats,
    anchor: torchNote === null ? `PyTorch ${torchVersion} torch.mm, torch.set_num_threads(${threads})` : null,
    anchorBlas: torchBlas ?? undefined,
    anchorNote: torchNote ?? undefined,
    shapes: SHAPES.map(([m, k, n, transB], i) => ({
      shape: `${m}x${k}x${n}${transB ? ' (B = W^T)' : ''}`,
      glimpse: round1(glimpseBest[i]!),
      torch: torchNote === null ? round1(torchBest[i]!) : null,
      ratio: torchNote === null ? round1(glimpseBest[i]! / torchBest[i]!, 3) : null,
    })),
  };
}
