"""Forward-only PyTorch peer of bench/bench_realscale.sh: the DINOv2 ViT of
bench/peers/vit_torch.py in eval mode under torch.inference_mode(), on random images already in
memory, fp32 or under CPU bf16 autocast (--bf16), the way a PyTorch user embeds images.

    OMP_NUM_THREADS=2 /usr/bin/python3 bench/peers/vit_forward_torch.py --arch vit_base \\
        --patch 14 --img 518 --batch 4 --threads 2 [--bf16]

One image warms up, then one batch is timed. Prints
"PEER torch <precision> <img> forward img/s (<t> threads): <x> img/s" and the peak RSS.
"""
import argparse
import contextlib
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vit_torch  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--arch", default="vit_base")
    ap.add_argument("--patch", type=int, default=14)
    ap.add_argument("--img", type=int, default=518)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bf16", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dim, depth, heads = vit_torch.ARCHS[a.arch]
    model = vit_torch.ViT(dim, depth, heads, a.patch, a.img).eval()
    x = torch.rand(a.batch, 3, a.img, a.img) - 0.5
    cast = (torch.autocast("cpu", dtype=torch.bfloat16) if a.bf16 else contextlib.nullcontext())
    with torch.inference_mode(), cast:
        model(x[:1])
        t0 = time.perf_counter()
        cls, _, patch = model(x)
        cls.float().sum().item(), patch.float().mean(1).sum().item()
        dt = time.perf_counter() - t0
    s = "s" if a.threads > 1 else ""
    prec = "bf16" if a.bf16 else "fp32"
    print(f"PEER torch {prec} {a.img} forward img/s ({a.threads} thread{s}): "
          f"{a.batch / dt:.3f} img/s")
    print(f"PEER peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
