#!/usr/bin/python3
"""CLIP's image tower in plain PyTorch, for the anchors of `npm run bench -- embed` (dev tool only).

Loads the vision tower and visual projection from a safetensors file by Hugging Face's names
(what Glimpse's CLIPModel.stateDict() writes), then, on request:
  --check FILE     a safetensors file with `pixels` [B, 3, H, W] and `features` [B, P]: reports
                   the largest difference between this module's output and `features`;
  --onnx FILE      exports the module with torch.onnx.export (opset 17, dynamic batch axis);
  --time B,B,...   images per second under torch.no_grad at each batch size.
Prints one JSON line. Needs only torch (1.13 works): no transformers, no onnx package.

  /usr/bin/python3 scripts/dev/export_clip_vision_onnx.py --weights vision.safetensors \
      --threads 2 --check check.safetensors --onnx vision.onnx --time 16,1
"""
import argparse
import json
import math
import struct
import sys
import time

import torch
from torch import nn


def read_safetensors(path):
    """name -> float32 tensor. The format: u64 little-endian header length, JSON header, raw data."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = memoryview(blob)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{name}: dtype {info['dtype']}, only F32 is read")
        begin, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=torch.float32) if end > begin else torch.empty(0)
        out[name] = t.reshape(info["shape"])
    return out


class Block(nn.Module):
    """Pre-LN transformer block with quick_gelu MLP (HF's CLIPEncoderLayer)."""

    def __init__(self, width, heads, mlp, eps):
        super().__init__()
        self.heads = heads
        self.layer_norm1 = nn.LayerNorm(width, eps=eps)
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)
        self.layer_norm2 = nn.LayerNorm(width, eps=eps)
        self.fc1 = nn.Linear(width, mlp)
        self.fc2 = nn.Linear(mlp, width)

    def forward(self, x):
        b, t, d = x.shape
        h, hd = self.heads, d // self.heads
        y = self.layer_norm1(x)
        q = self.q_proj(y).reshape(b, t, h, hd).transpose(1, 2)
        k = self.k_proj(y).reshape(b, t, h, hd).transpose(1, 2)
        v = self.v_proj(y).reshape(b, t, h, hd).transpose(1, 2)
        att = torch.softmax(torch.matmul(q, k.transpose(2, 3)) * (hd ** -0.5), dim=-1)
        x = x + self.out_proj(torch.matmul(att, v).transpose(1, 2).reshape(b, t, d))
        y = self.fc1(self.layer_norm2(x))
        y = y * torch.sigmoid(1.702 * y)
        return x + self.fc2(y)


class VisionTower(nn.Module):
    """Patch conv, [class] + positions, pre-LN, encoder, post-LN on [class], projection."""

    def __init__(self, sd, heads, eps):
        super().__init__()
        conv_w = sd["vision_model.embeddings.patch_embedding.weight"]
        width, channels, patch, _ = conv_w.shape
        layers = 1 + max(int(k.split(".")[3]) for k in sd if k.startswith("vision_model.encoder.layers."))
        mlp = sd["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0]
        proj = sd["visual_projection.weight"].shape[0]
        self.patch_embedding = nn.Conv2d(channels, width, patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.empty(width))
        self.position_embedding = nn.Parameter(torch.empty(sd["vision_model.embeddings.position_embedding.weight"].shape))
        self.pre_layrnorm = nn.LayerNorm(width, eps=eps)
        self.layers = nn.ModuleList(Block(width, heads, mlp, eps) for _ in range(layers))
        self.post_layernorm = nn.LayerNorm(width, eps=eps)
        self.visual_projection = nn.Linear(width, proj, bias=False)
        self.load_hf(sd)

    def load_hf(self, sd):
        rename = {
            "vision_model.embeddings.patch_embedding.weight": "patch_embedding.weight",
            "vision_model.embeddings.class_embedding": "class_embedding",
            "vision_model.embeddings.position_embedding.weight": "position_embedding",
        }
        mine = {}
        for k, v in sd.items():
            if k in rename:
                mine[rename[k]] = v
            elif k.startswith("vision_model.encoder."):
                mine[k[len("vision_model.encoder."):].replace("self_attn.", "").replace("mlp.", "")] = v
            elif k.startswith("vision_model.") or k.startswith("visual_projection."):
                mine[k[len("vision_model."):] if k.startswith("vision_model.") else k] = v
        self.load_state_dict(mine, strict=True)

    def forward(self, pixels):
        x = self.patch_embedding(pixels).flatten(2).transpose(1, 2)
        cls = self.class_embedding.reshape(1, 1, -1).expand(x.shape[0], 1, -1)
        x = self.pre_layrnorm(torch.cat([cls, x], dim=1) + self.position_embedding)
        for layer in self.layers:
            x = layer(x)
        return self.visual_projection(self.post_layernorm(x[:, 0]))


def images_per_second(model, batch, size, repeats):
    x = torch.randn(batch, 3, size, size)
    model(x)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t0)
    times.sort()
    return batch / times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--eps", type=float, default=1e-5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--check")
    ap.add_argument("--onnx")
    ap.add_argument("--time", default="")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    model = VisionTower(read_safetensors(args.weights), args.heads, args.eps).eval()
    size = model.patch_embedding.weight.shape[2] * round(math.sqrt(model.position_embedding.shape[0] - 1))
    res = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    with open("/proc/self/maps") as f:
        res["blas"] = "OpenBLAS" if "openblas" in f.read().lower() else "not OpenBLAS"
    with torch.no_grad():
        if args.check:
            c = read_safetensors(args.check)
            got = model(c["pixels"])
            res["maxAbsDiff"] = float((got - c["features"]).abs().max())
            res["maxAbsRef"] = float(got.abs().max())
        if args.onnx:
            torch.onnx.export(
                model, torch.zeros(1, 3, size, size), args.onnx, opset_version=17,
                input_names=["pixel_values"], output_names=["image_embeds"],
                dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}})
        res["imagesPerSecond"] = {b: images_per_second(model, int(b), size, args.repeats)
                                  for b in args.time.split(",") if b}
    print(json.dumps(res))


if __name__ == "__main__":
    sys.exit(main())
