"""Backbone forward and backward in PyTorch (float64) for tests/model/test_vit_torch.c.

    /usr/bin/python3 tests/model/vit_torch_fixture.py OUT.h5

Two small ViTs (DINOv2 parameter names, model from bench/peers/vit_torch.py) with random
parameters that make every branch matter: 'mlp' (registers, iBOT mask, drop-path subsets,
pos-embed resampled to a non-square grid) and 'swiglu' (grey image into a 3-channel patch
embedding, SwiGLU FFN, native grid). For each: inputs, the probes g_cls [b, D] and g_patch
[b, n, D], outputs, and the gradient of <cls, g_cls> + <patch, g_patch> w.r.t. every parameter.
Inputs and parameters are drawn in float32; everything is computed in float64, stored float32.
"""
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench",
                                "peers"))
import vit_torch  # noqa: E402

# attribute names as in tests/reference/fixtures; H x W is the image size, c its channels
CASES = {
    "mlp": dict(embed_dim=32, depth=2, num_heads=4, mlp_ratio=4.0, patch_size=8, global_size=32,
                in_chans=3, num_register_tokens=1, interpolate_offset=0.1, ffn="mlp", H=24, W=40,
                c=3, batch=4, masked=1, drop_path_rate=0.3),
    "swiglu": dict(embed_dim=48, depth=2, num_heads=3, mlp_ratio=4.0, patch_size=4, global_size=16,
                   in_chans=3, num_register_tokens=0, interpolate_offset=0.1, ffn="swiglu", H=16,
                   W=16, c=1, batch=3, masked=0, drop_path_rate=0.0),
}


def random_param(name, shape, g):
    def normal(std):
        return torch.randn(shape, generator=g) * std
    if name.endswith(".bias"):
        return normal(0.05)
    if "norm" in name:
        return 1.0 + normal(0.1)
    if "gamma" in name:
        return 0.15 + 0.3 * torch.rand(shape, generator=g)
    if name in ("cls_token", "pos_embed", "register_tokens"):
        return normal(0.2)
    if name == "mask_token":
        return normal(0.5)
    return normal(1.0 / np.sqrt(np.prod(shape[1:])))


def build(name, c, g):
    model = vit_torch.ViT(c["embed_dim"], c["depth"], c["num_heads"], c["patch_size"],
                          c["global_size"], mlp_ratio=c["mlp_ratio"], in_chans=c["in_chans"],
                          registers=c["num_register_tokens"], ffn=c["ffn"],
                          interpolate_offset=c["interpolate_offset"])
    params = {n: random_param(n, tuple(p.shape), g) for n, p in model.named_parameters()}
    model = model.double()
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(params[n])
    b, p = c["batch"], c["patch_size"]
    n_patch = (c["H"] // p) * (c["W"] // p)
    x = torch.randn(b, c["c"], c["H"], c["W"], generator=g)
    data = {f"{name}/params/{k}": v for k, v in params.items()}
    masks = drop = None
    if c["masked"]:
        masks = torch.rand(b, n_patch, generator=g) < 0.3
        data[f"{name}/inputs/mask"] = masks
    if c["drop_path_rate"] > 0:
        keep = max(int(b * (1 - c["drop_path_rate"])), 1)
        drop = [{k: torch.sort(torch.randperm(b, generator=g)[:keep]).values
                 for k in ("attn", "ffn")} for _ in range(c["depth"])]
        count = torch.tensor([[keep, keep]] * c["depth"])
        index = torch.zeros(c["depth"], 2, b, dtype=torch.int64)
        for i, s in enumerate(drop):
            index[i, 0, :keep], index[i, 1, :keep] = s["attn"], s["ffn"]
        data[f"{name}/inputs/drop_count"], data[f"{name}/inputs/drop_index"] = count, index
    g_cls = torch.randn(b, c["embed_dim"], generator=g)
    g_patch = torch.randn(b, n_patch, c["embed_dim"], generator=g)
    xd = x.double().expand(-1, 3, -1, -1) if c["c"] == 1 else x.double()
    cls, reg, patch = model(xd, masks=masks, drop_path=drop)
    torch.autograd.backward([cls, patch], [g_cls.double(), g_patch.double()])
    data.update({f"{name}/inputs/x": x, f"{name}/inputs/g_cls": g_cls,
                 f"{name}/inputs/g_patch": g_patch, f"{name}/outputs/cls": cls.detach(),
                 f"{name}/outputs/patch": patch.detach()})
    for n, p in model.named_parameters():
        data[f"{name}/grads/{n}"] = p.grad if p.grad is not None else torch.zeros_like(p)
    return data


def main():
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(6006)
    with h5py.File(sys.argv[1], "w") as f:
        for name, c in CASES.items():
            grp = f.require_group(name)
            for k, v in c.items():
                grp.attrs[k] = np.bytes_(v) if isinstance(v, str) else v
            for k, v in build(name, c, g).items():
                v = v.detach()
                arr = v.numpy().astype(np.uint8 if v.dtype == torch.bool else
                                       np.int64 if not v.is_floating_point() else np.float32)
                f.create_dataset(k, data=arr)


if __name__ == "__main__":
    main()
