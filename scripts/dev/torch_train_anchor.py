#!/usr/bin/python3
"""The tiny CLIP training step in plain PyTorch, the anchor of `npm run bench -- train` (dev tool only).

The architecture of Glimpse's `tiny-clip` (HF CLIP layout, exact GELU): vision 64 px, patch 8,
width 256, 4 pre-LN layers of 4 heads, MLP 1024, class-token pooling; text context 32, vocab
1000, width 256, 4 causal layers, pooling at the largest id; projections to 128, learned logit
scale, symmetric InfoNCE. One step is forward, backward and torch.optim.AdamW. Random weights,
images and token ids: the timing does not depend on them. Needs only torch (1.13 works).

  /usr/bin/python3 scripts/dev/torch_train_anchor.py --threads 2 --batch 64 --steps 5 [--flip 0.5]

Prints one JSON line: the fastest and the median seconds of a step (after one warm-up step).
"""
import argparse
import json
import math
import time

import torch
from torch import nn
import torch.nn.functional as F


class Block(nn.Module):
    """x + attn(ln1(x)), then x + mlp(ln2(x)); attention spelled out (1.13 has no fused kernel)."""

    def __init__(self, width, heads, mlp, causal):
        super().__init__()
        self.heads = heads
        self.causal = causal
        self.ln1 = nn.LayerNorm(width)
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, mlp)
        self.fc2 = nn.Linear(mlp, width)

    def forward(self, x):
        b, t, d = x.shape
        h = self.ln1(x)
        split = lambda y: y.reshape(b, t, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.q_proj(h)), split(self.k_proj(h)), split(self.v_proj(h))
        scores = q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5
        if self.causal:
            scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
        o = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.out_proj(o)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class TinyCLIP(nn.Module):
    def __init__(self, width=256, layers=4, heads=4, mlp=1024, proj=128, image=64, patch=8, context=32, vocab=1000):
        super().__init__()
        self.patch = patch
        grid = image // patch
        self.conv = nn.Conv2d(3, width, patch, patch, bias=False)
        self.cls = nn.Parameter(torch.randn(width) * width ** -0.5)
        self.vpos = nn.Parameter(torch.randn(grid * grid + 1, width) * 0.02)
        self.ln_pre = nn.LayerNorm(width)
        self.vblocks = nn.ModuleList(Block(width, heads, mlp, False) for _ in range(layers))
        self.ln_post = nn.LayerNorm(width)
        self.vproj = nn.Linear(width, proj, bias=False)
        self.tok = nn.Embedding(vocab, width)
        self.tpos = nn.Parameter(torch.randn(context, width) * 0.01)
        self.tblocks = nn.ModuleList(Block(width, heads, mlp, True) for _ in range(layers))
        self.ln_final = nn.LayerNorm(width)
        self.tproj = nn.Linear(width, proj, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, pixels, flip, generator):
        x = self.conv(pixels).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], 1, -1), x], 1) + self.vpos
        if flip > 0:
            # open_clip's PatchDropout: a random subset of patches per image, the class token kept.
            b, n = x.shape[0], x.shape[1] - 1
            keep = max(1, int(round(n * (1 - flip))))
            idx = torch.rand(b, n, generator=generator).argsort(-1)[:, :keep] + 1
            x = torch.cat([x[:, :1], x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[2]))], 1)
        x = self.ln_pre(x)
        for blk in self.vblocks:
            x = blk(x)
        return self.vproj(self.ln_post(x[:, 0]))

    def encode_text(self, ids):
        x = self.tok(ids) + self.tpos
        for blk in self.tblocks:
            x = blk(x)
        x = self.ln_final(x)
        return self.tproj(x[torch.arange(x.shape[0]), ids.argmax(-1)])

    def forward(self, pixels, ids, flip=0.0, generator=None):
        img = F.normalize(self.encode_image(pixels, flip, generator), dim=-1)
        txt = F.normalize(self.encode_text(ids), dim=-1)
        logits = self.logit_scale.exp() * txt @ img.t()
        labels = torch.arange(logits.shape[0])
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--flip", type=float, default=0.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = TinyCLIP()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(1)
    pixels = torch.randn(a.batch, 3, 64, 64, generator=g)
    ids = torch.randint(1, 1000, (a.batch, 32), generator=g)

    def step():
        loss = model(pixels, ids, a.flip, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    step()  # warm-up
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "batch": a.batch, "flip": a.flip,
                      "parameters": sum(p.numel() for p in model.parameters()),
                      "bestStepSeconds": times[0], "medianStepSeconds": times[len(times) // 2]}))


if __name__ == "__main__":
    main()
