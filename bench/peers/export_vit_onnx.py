"""Exports the DINOv2 ViT of bench/peers/vit_torch.py (random weights, eval mode) to ONNX for
the ONNX Runtime peer of bench/bench_realscale.sh (bench/peers/vit_forward_ort.js): opset 14,
dynamic batch, outputs cls [b, D] and patch_mean [b, D], as rdino-embed writes them.

    /usr/bin/python3 bench/peers/export_vit_onnx.py --arch vit_base --patch 14 --img 518 OUT.onnx
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vit_torch  # noqa: E402


class Embedder(torch.nn.Module):
    def __init__(self, vit):
        super().__init__()
        self.vit = vit

    def forward(self, x):
        cls, _, patches = self.vit(x)
        return cls, patches.mean(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--arch", default="vit_base")
    ap.add_argument("--patch", type=int, default=14)
    ap.add_argument("--img", type=int, default=518)
    ap.add_argument("out")
    a = ap.parse_args()
    torch.manual_seed(0)
    dim, depth, heads = vit_torch.ARCHS[a.arch]
    model = Embedder(vit_torch.ViT(dim, depth, heads, a.patch, a.img)).eval()
    x = torch.rand(1, 3, a.img, a.img) - 0.5
    with torch.no_grad():
        torch.onnx.export(model, (x,), a.out, opset_version=14, input_names=["pixels"],
                          output_names=["cls", "patch_mean"],
                          dynamic_axes={"pixels": {0: "batch"}, "cls": {0: "batch"},
                                        "patch_mean": {0: "batch"}})


if __name__ == "__main__":
    main()
