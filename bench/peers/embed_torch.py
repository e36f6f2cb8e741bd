"""Benchmark peer of bench/bench_embed.sh: PyTorch inference of the same DINOv2 ViT
(bench/peers/vit_torch.py) on the same shard images, the work of rdino-embed per batch: uint8
pixels -> (v / 255 - mean) / std, grey replicated to 3 channels, forward in eval mode under
torch.inference_mode(), CLS and mean patch token copied out.

    OMP_NUM_THREADS=1 /usr/bin/python3 bench/peers/embed_torch.py --shards DIR --threads 1 \\
        --arch vit_small --patch 16 --batch 16 --iters 2

Each iteration embeds every image of the shards (read once, up front); the best iteration
counts (iteration 0 warms up). Prints "PEER torch <label> embed img/s (<t> threads): <x> img/s"
and the process's peak RSS.
"""
import argparse
import json
import math
import os
import resource
import sys
import time

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vit_torch  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shards", required=True)
    ap.add_argument("--arch", default="vit_small")
    ap.add_argument("--label", default="vit-s16")
    ap.add_argument("--patch", type=int, default=16)
    ap.add_argument("--native", type=int, default=224)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with open(os.path.join(a.shards, "index.json")) as fh:
        index = json.load(fh)
    pixels = []
    for entry in index["shards"]:
        with h5py.File(os.path.join(a.shards, entry["file"]), "r") as f:
            pixels.append(f["images"][:])
    pixels = np.concatenate(pixels)
    dim, depth, heads = vit_torch.ARCHS[a.arch]
    model = vit_torch.ViT(dim, depth, heads, a.patch, a.native).eval()
    mean, std = 0.5307, 0.2583
    best = math.inf
    for it in range(a.iters + 1):
        t0 = time.perf_counter()
        with torch.inference_mode():
            for b0 in range(0, len(pixels), a.batch):
                x = torch.from_numpy(pixels[b0:b0 + a.batch]).float().div_(255.0)
                x = x.sub_(mean).div_(std).unsqueeze(1).expand(-1, 3, -1, -1)
                cls, _, patch = model(x)
                cls.numpy().copy(), patch.mean(dim=1).numpy().copy()
        t = time.perf_counter() - t0
        if it > 0:
            best = min(best, t)
    s = "s" if a.threads > 1 else ""
    print(f"PEER torch {a.label} embed img/s ({a.threads} thread{s}): {len(pixels) / best:.3f} img/s")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"PEER torch {a.label} peak RSS ({a.threads} thread{s}): {rss:.1f} MiB")


if __name__ == "__main__":
    main()
