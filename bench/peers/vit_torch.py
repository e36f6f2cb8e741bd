"""A DINOv2 ViT in PyTorch: the benchmark peer of bench/bench_vit.c and the oracle of
tests/model/vit_torch_fixture.py (the backbone's backward against PyTorch).

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/peers/vit_torch.py \
        --threads 1 --img 224 --batch 8 --iters 3

The module mirrors dinov2/models/vision_transformer.py with DINOv2's parameter names: pre-norm
blocks, LayerScale, qkv bias, exact GELU MLP or SwiGLU (w12/w3), LayerNorm eps 1e-6, register
tokens, mask_token, bicubic pos-embed interpolation with offset (scale-factor form) and the
exact-count drop-path subsets of drop_add_residual_stochastic_depth given as inputs. The
benchmark times forward + backward from given gradients of the CLS and patch outputs, like
rd_vit_backward, and prints
"PEER torch <label> <img> fwd+bwd img/s (<t> threads): <x> img/s" (best iteration).
With --infer it times the forward alone under torch.inference_mode() ("fwd img/s"), and with
--bf16 under torch.autocast("cpu", dtype=torch.bfloat16) (linears, convolution and matmuls in
bf16 through oneDNN; "bf16 fwd img/s"): the peer of bench/bench_vit_bf16.sh.
"""
import argparse
import contextlib
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ARCHS = {"vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6), "vit_base": (768, 12, 12),
         "vit_large": (1024, 24, 16)}


class PatchEmbed(nn.Module):
    def __init__(self, in_chans, dim, p):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, p, p)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


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


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class SwiGLU(nn.Module):
    """DINOv2's SwiGLUFFNFused: hidden = (int(hidden * 2 / 3) + 7) // 8 * 8."""

    def __init__(self, dim, hidden):
        super().__init__()
        hidden = (int(hidden * 2 / 3) + 7) // 8 * 8
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x):
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)


class LayerScale(nn.Module):
    def __init__(self, dim, init):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x):
        return x * self.gamma


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio, ffn):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.ls1 = LayerScale(dim, 1e-5)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = (SwiGLU if ffn == "swiglu" else Mlp)(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, 1e-5)

    def forward(self, x, subsets=None):
        """subsets: None or {'attn': S, 'ffn': S}: x[S] += (b/|S|) * branch(x[S])."""
        branches = ((self.ls1, lambda t: self.attn(self.norm1(t))),
                    (self.ls2, lambda t: self.mlp(self.norm2(t))))
        for (ls, branch), key in zip(branches, ("attn", "ffn")):
            if subsets is None:
                x = x + ls(branch(x))
            else:
                S = subsets[key]
                x = x.index_add(0, S, ls(branch(x[S])), alpha=x.shape[0] / S.numel())
        return x


class ViT(nn.Module):
    def __init__(self, dim, depth, heads, patch, native, mlp_ratio=4.0, in_chans=3, registers=0,
                 ffn="mlp", interpolate_offset=0.1):
        super().__init__()
        self.patch, self.offset, self.registers = patch, interpolate_offset, registers
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 1e-6)
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + (native // patch) ** 2, dim) * 0.02)
        if registers:
            self.register_tokens = nn.Parameter(torch.randn(1, registers, dim) * 1e-6)
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.patch_embed = PatchEmbed(in_chans, dim, patch)
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio, ffn) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def pos_for(self, H, W):
        N = self.pos_embed.shape[1] - 1
        g0, g1 = H // self.patch, W // self.patch
        if g0 * g1 == N and H == W:
            return self.pos_embed
        M = int(math.sqrt(N))
        grid = self.pos_embed[:, 1:].reshape(1, M, M, -1).permute(0, 3, 1, 2)
        if self.offset:
            scale = ((g0 + self.offset) / M, (g1 + self.offset) / M)
            grid = F.interpolate(grid, scale_factor=scale, mode="bicubic")
        else:
            grid = F.interpolate(grid, size=(g0, g1), mode="bicubic")
        grid = grid.permute(0, 2, 3, 1).reshape(1, g0 * g1, -1)
        return torch.cat([self.pos_embed[:, :1], grid], dim=1)

    def forward(self, x, masks=None, drop_path=None):
        """Returns (cls [b, D], registers [b, R, D], patches [b, n, D]) after the final norm."""
        H, W = x.shape[-2:]
        t = self.patch_embed(x)
        if masks is not None:
            t = torch.where(masks.unsqueeze(-1), self.mask_token.to(t.dtype).unsqueeze(0), t)
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], dim=1) + self.pos_for(H, W)
        if self.registers:
            t = torch.cat([t[:, :1], self.register_tokens.expand(t.shape[0], -1, -1), t[:, 1:]],
                          dim=1)
        for i, blk in enumerate(self.blocks):
            t = blk(t, None if drop_path is None else drop_path[i])
        z = self.norm(t)
        R = self.registers
        return z[:, 0], z[:, 1:1 + R], z[:, 1 + R:]


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
    ap.add_argument("--infer", action="store_true", help="forward only, inference mode")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (with --infer)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dim, depth, heads = ARCHS[a.arch]
    model = ViT(dim, depth, heads, a.patch, a.native)
    x = torch.rand(a.batch, 3, a.img, a.img) - 0.5
    n = (a.img // a.patch) ** 2
    g_cls, g_patch = torch.rand(a.batch, dim) - 0.5, torch.rand(a.batch, n, dim) - 0.5
    best = math.inf
    for it in range(a.iters + 1):                       # iteration 0 warms up
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        if a.infer:
            autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if a.bf16
                        else contextlib.nullcontext())
            with torch.inference_mode(), autocast:
                model(x)
        else:
            cls, _, patch = model(x)
            torch.autograd.backward([cls, patch], [g_cls, g_patch])
        t = time.perf_counter() - t0
        if it > 0:
            best = min(best, t)
    s = "s" if a.threads > 1 else ""
    what = ("bf16 " if a.bf16 else "") + ("fwd" if a.infer else "fwd+bwd")
    print(f"PEER torch {a.label} {a.img} {what} img/s ({a.threads} thread{s}): "
          f"{a.batch / best:.3f} img/s")


if __name__ == "__main__":
    main()
