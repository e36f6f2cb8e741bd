"""PyTorch peer of bench/bench_vit.c: forward + backward images per second of a DINOv2 ViT.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/peers/vit_torch.py \
        --threads 1 --img 224 --batch 8 --iters 3

The module mirrors dinov2/models/vision_transformer.py (pre-norm blocks, LayerScale, qkv bias,
exact GELU, LayerNorm eps 1e-6, bicubic pos-embed interpolation with offset 0.1) in fp32; the
backward starts from given gradients of the CLS and patch outputs, like rd_vit_backward.
Prints "PEER torch <label> <img> fwd+bwd img/s (<t> threads): <x> img/s" (best iteration).
"""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ARCHS = {"vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6), "vit_base": (768, 12, 12),
         "vit_large": (1024, 24, 16)}


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.ls1 = nn.Parameter(torch.full((dim,), 1e-5))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.ls2 = nn.Parameter(torch.full((dim,), 1e-5))

    def forward(self, x):
        x = x + self.attn(self.norm1(x)) * self.ls1
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x)))) * self.ls2


class ViT(nn.Module):
    def __init__(self, arch, patch, native):
        super().__init__()
        dim, depth, heads = ARCHS[arch]
        self.patch = patch
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 1e-6)
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + (native // patch) ** 2, dim) * 0.02)
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def pos_for(self, H, W):
        N = self.pos_embed.shape[1] - 1
        g0, g1 = H // self.patch, W // self.patch
        if g0 * g1 == N and H == W:
            return self.pos_embed
        M = int(math.sqrt(N))
        grid = self.pos_embed[:, 1:].reshape(1, M, M, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, scale_factor=((g0 + 0.1) / M, (g1 + 0.1) / M), mode="bicubic")
        grid = grid.permute(0, 2, 3, 1).reshape(1, g0 * g1, -1)
        return torch.cat([self.pos_embed[:, :1], grid], dim=1)

    def forward(self, x):
        H, W = x.shape[-2:]
        t = self.patch_embed(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], dim=1) + self.pos_for(H, W)
        for blk in self.blocks:
            t = blk(t)
        z = self.norm(t)
        return z[:, 0], z[:, 1:]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--arch", default="vit_small")
    ap.add_argument("--label", default="vit-s16")
    ap.add_argument("--patch", type=int, default=16)
    ap.add_argument("--native", type=int, default=224)
    ap.add_argument("--img", type=int, default=224)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = ViT(a.arch, a.patch, a.native)
    x = torch.rand(a.batch, 3, a.img, a.img) - 0.5
    n = (a.img // a.patch) ** 2
    dim = ARCHS[a.arch][0]
    g_cls, g_patch = torch.rand(a.batch, dim) - 0.5, torch.rand(a.batch, n, dim) - 0.5
    best = math.inf
    for it in range(a.iters + 1):                       # iteration 0 warms up
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        cls, patch = model(x)
        torch.autograd.backward([cls, patch], [g_cls, g_patch])
        t = time.perf_counter() - t0
        if it > 0:
            best = min(best, t)
    s = "s" if a.threads > 1 else ""
    print(f"PEER torch {a.label} {a.img} fwd+bwd img/s ({a.threads} thread{s}): "
          f"{a.batch / best:.3f} img/s")


if __name__ == "__main__":
    main()
