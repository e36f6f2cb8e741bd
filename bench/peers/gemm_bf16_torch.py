"""PyTorch bf16 matmul on the ViT-B/14 linears: the peer of bench/bench_gemm_bf16.c.

    OMP_NUM_THREADS=1 /usr/bin/python3 bench/peers/gemm_bf16_torch.py --threads 1 --iters 3

Same shapes, same FLOP counts, same best-of-iterations timing as the C benchmark:
  fwd:   torch.matmul(x.bfloat16(), w16.t())  (converting x included; w16 converted once)
  train: w16 = w.bfloat16() (the per-step refresh), the forward, dx = dy16 @ w16,
         dw = dy16.t() @ x16, with dy16 = dy.bfloat16()
Torch 1.13 runs bf16 matmul through oneDNN (Debian's libdnnl 2.6.3); its outputs are bf16
where rdino's are fp32, and it adds no bias: slightly less work than the C side. Prints
"PEER gemm_bf16_<shape><img>_t<threads> fwd GFLOP/s: <x>" and the same for train.
"""
import argparse
import time

import torch

LAYERS = [("qkv", 2304, 768), ("proj", 768, 768), ("fc1", 3072, 768), ("fc2", 768, 3072)]
IMAGES = [(518, 4 * 1370), (224, 4 * 257)]


def best_time(fn, iters):
    fn()  # warm-up
    best = float("inf")
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--img", default="all")
    ap.add_argument("--shape", default="all")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    for img, rows in IMAGES:
        if args.img not in ("all", str(img)):
            continue
        for name, oc, c in LAYERS:
            if args.shape not in ("all", name):
                continue
            x = torch.rand(rows, c, generator=g) - 0.5
            w = torch.rand(oc, c, generator=g) - 0.5
            dy = torch.rand(rows, oc, generator=g) - 0.5
            w16 = w.bfloat16()

            def fwd():
                return torch.matmul(x.bfloat16(), w16.t())

            def train():
                wb = w.bfloat16()
                x16, dy16 = x.bfloat16(), dy.bfloat16()
                torch.matmul(x16, wb.t())
                torch.matmul(dy16, wb)
                torch.matmul(dy16.t(), x16)

            flops = 2.0 * rows * oc * c
            tag = f"gemm_bf16_{name}{img}_t{args.threads}"
            print(f"PEER {tag} fwd GFLOP/s: {flops / best_time(fwd, args.iters) / 1e9:.1f}")
            print(f"PEER {tag} train GFLOP/s: {3 * flops / best_time(train, args.iters) / 1e9:.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
