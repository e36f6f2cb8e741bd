"""Generate the HDF5 fixtures for the rdino C tests from the PyTorch oracle.

    /usr/bin/python3 tests/reference/make_fixtures.py      # from the repository root
    (options: --dtype float32 to run the oracle in fp32, --out DIR)

Deterministic: fixed seeds, one thread, no HDF5 timestamps → byte-identical reruns.
All inputs and parameters are drawn as float32; the oracle runs in --dtype
(default float64) and results are stored as float32.
"""

import argparse
import math
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dinov2_oracle as O  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DTYPES = {"float64": torch.float64, "float32": torch.float32}


# ----------------------------------------------------------------------------------
# Case definitions
# ----------------------------------------------------------------------------------

def step_cases():
    """name → (StepConfig, seed)."""
    return {
        "step_centering": (O.StepConfig(
            embed_dim=32, depth=2, num_heads=4, in_chans=3, num_register_tokens=0,
            n_local=2, batch_size=3, K=128, bottleneck=32, hidden=96,
            separate_ibot_head=False, centering="centering", koleo_weight=0.1,
            drop_path_rate=0.0, teacher_temp=0.04, lr=1e-3, last_layer_lr=1e-3, wd=0.04,
            momentum=0.99, layerwise_decay=0.9), 1001),
        "step_sinkhorn_registers": (O.StepConfig(
            embed_dim=32, depth=2, num_heads=4, in_chans=1, num_register_tokens=2,
            n_local=3, batch_size=2, K=128, bottleneck=32, hidden=64,
            separate_ibot_head=True, ibot_K=64, ibot_bottleneck=16, ibot_hidden=48,
            centering="sinkhorn_knopp", koleo_weight=0.0, drop_path_rate=0.0,
            teacher_temp=0.04, lr=2e-3, last_layer_lr=1e-3, wd=0.1, momentum=0.995,
            layerwise_decay=1.0, clip_grad=5.0), 2002),   # dino_head (4.5) stays unclipped
        "step_droppath": (O.StepConfig(
            embed_dim=32, depth=2, num_heads=4, in_chans=3, num_register_tokens=0,
            n_local=3, batch_size=4, K=128, bottleneck=32, hidden=64,
            separate_ibot_head=False, centering="centering", koleo_weight=0.1,
            drop_path_rate=0.3, teacher_temp=0.07, lr=1e-3, last_layer_lr=0.0, wd=0.2,
            momentum=0.98, layerwise_decay=0.9), 3003),
        # SwiGLUFFNFused: hidden int(16 * 4 * 2/3) = 42 rounded up to 48
        "step_swiglu": (O.StepConfig(
            embed_dim=16, depth=2, num_heads=2, ffn="swiglu", in_chans=3, num_register_tokens=1,
            global_size=24, local_size=16, n_local=2, batch_size=2, K=32, bottleneck=8,
            hidden=32, separate_ibot_head=False, centering="centering", koleo_weight=0.1,
            drop_path_rate=0.0, teacher_temp=0.04, lr=1e-3, last_layer_lr=1e-3, wd=0.04,
            momentum=0.99, layerwise_decay=0.9), 6006),
        # no LayerScale (ls1 / ls2 are identities), also inside the drop-path rescale
        "step_no_layerscale": (O.StepConfig(
            embed_dim=16, depth=2, num_heads=2, layerscale=0.0, in_chans=1,
            num_register_tokens=0, global_size=24, local_size=16, n_local=2, batch_size=3, K=32,
            bottleneck=8, hidden=32, separate_ibot_head=False, centering="centering",
            koleo_weight=0.1, drop_path_rate=0.3, teacher_temp=0.07, lr=1e-3, last_layer_lr=1e-3,
            wd=0.04, momentum=0.99, layerwise_decay=0.9), 7007),
    }


RES_CFG = O.StepConfig(embed_dim=64, depth=3, num_heads=4, in_chans=3, num_register_tokens=1,
                       global_size=32)
RES_SEED = 4004
RES_BATCH = 2
RESOLUTIONS = [(32, 32), (16, 16), (48, 48), (24, 40)]    # (H, W); 32x32 is native

SK_SEED = 5005
SK_ROWS, SK_K, SK_TEMP, SK_SHIFT = 40, 512, 0.05, 20.0
KOLEO_N, KOLEO_D = 8, 64


# ----------------------------------------------------------------------------------
# Random parameters, optimizer state and inputs (all float32)
# ----------------------------------------------------------------------------------

def random_param(sub: str, name: str, shape, g: torch.Generator) -> torch.Tensor:
    """Non-DINOv2 init chosen so that every block and branch visibly matters."""
    def normal(std):
        return torch.randn(shape, generator=g) * std

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=g)

    if name.endswith(".bias"):
        return normal(0.05)
    if "norm" in name:                                   # LayerNorm weight
        return 1.0 + normal(0.1)
    if "gamma" in name:
        return uniform(0.5, 1.5) * 0.3
    if name in ("cls_token", "pos_embed", "register_tokens"):
        return normal(0.2)
    if name == "mask_token":
        return normal(0.5)
    if name == "last_layer.weight_g":
        return uniform(0.5, 1.5)
    if name == "last_layer.weight_v":
        return normal(0.2)
    fan_in = int(np.prod(shape[1:]))                     # Linear / Conv2d weight
    return normal(1.0 / math.sqrt(fan_in))


def random_state_dict(model, g) -> dict:
    return {sub: {n: random_param(sub, n, tuple(p.shape), g) for n, p in m.named_parameters()}
            for sub, m in model.items()}


def perturb(sd: dict, g, std=0.01) -> dict:
    return {sub: {n: t + torch.randn(t.shape, generator=g) * std for n, t in d.items()}
            for sub, d in sd.items()}


def random_moments(sd: dict, g):
    m = {sub: {n: torch.randn(t.shape, generator=g) * 1e-3 for n, t in d.items()}
         for sub, d in sd.items()}
    v = {sub: {n: 1e-7 + (1e-5 - 1e-7) * torch.rand(t.shape, generator=g) for n, t in d.items()}
         for sub, d in sd.items()}
    return m, v


def random_masks(n_images: int, N: int, g) -> torch.Tensor:
    """floor(n_images/2) masked images (stratified ratios in [0.1, 0.5] as collate_data_and_cast
    draws them, ≥1 patch, random positions), randomly assigned to images."""
    n_masked = n_images // 2
    probs = np.linspace(0.1, 0.5, n_masked + 1)
    masks = torch.zeros(n_images, N, dtype=torch.bool)
    owners = torch.randperm(n_images, generator=g)[:n_masked]
    for i, img in enumerate(owners.tolist()):
        u = probs[i] + (probs[i + 1] - probs[i]) * torch.rand(1, generator=g).item()
        count = max(int(N * u), 1)
        masks[img, torch.randperm(N, generator=g)[:count]] = True
    return masks


def drop_path_subsets(cfg: O.StepConfig, b: int, g):
    """Per block {'attn','ffn'}: ascending exact-count subset of size max(int(b(1-q)),1)."""
    keep = max(int(b * (1 - cfg.drop_path_rate)), 1)
    return [{br: torch.sort(torch.randperm(b, generator=g)[:keep]).values for br in ("attn", "ffn")}
            for _ in range(cfg.depth)]


def random_inputs(cfg: O.StepConfig, g) -> O.StepInputs:
    B, C = cfg.batch_size, cfg.in_chans
    gc = torch.randn(2 * B, C, cfg.global_size, cfg.global_size, generator=g)
    lc = torch.randn(cfg.n_local * B, C, cfg.local_size, cfg.local_size, generator=g)
    masks = random_masks(2 * B, cfg.n_global_patches, g)
    mask_indices = masks.flatten().nonzero().squeeze(1)
    masks_weight = (1.0 / masks.sum(-1).clamp(min=1.0)).unsqueeze(-1).expand_as(masks)[masks]
    inp = O.StepInputs(gc, lc, masks, mask_indices, masks_weight.float())
    if cfg.centering == "centering":
        inp.center_dino = torch.randn(cfg.K, generator=g) * 0.2
        inp.center_ibot = torch.randn(cfg.ibot_out_dim, generator=g) * 0.2
    if cfg.drop_path_rate > 0:
        inp.drop_path = {"global": drop_path_subsets(cfg, 2 * B, g),
                         "local": drop_path_subsets(cfg, cfg.n_local * B, g)}
    return inp


# ----------------------------------------------------------------------------------
# Case builders → (attrs, {path: tensor})
# ----------------------------------------------------------------------------------

def common_attrs(dtype) -> dict:
    return {"oracle_dtype": str(dtype).replace("torch.", ""), "torch_version": torch.__version__}


def build_step_case(cfg: O.StepConfig, seed: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    skeleton = O.build_model(cfg)
    student = random_state_dict(skeleton, g)
    teacher = perturb(student, g)
    exp_avg, exp_avg_sq = random_moments(student, g)
    inp = random_inputs(cfg, g)

    data = {"inputs/global_crops": inp.global_crops, "inputs/local_crops": inp.local_crops,
            "inputs/masks": inp.masks, "inputs/mask_indices": inp.mask_indices,
            "inputs/masks_weight": inp.masks_weight}
    if inp.center_dino is not None:
        data["inputs/center_dino"] = inp.center_dino
        data["inputs/center_ibot"] = inp.center_ibot
    if inp.drop_path is not None:
        for tag, blocks in inp.drop_path.items():
            for i, s in enumerate(blocks):
                for br, idx in s.items():
                    data[f"inputs/drop_path/{tag}/blocks.{i}/{br}"] = idx
    for who, sd in (("student", student), ("teacher", teacher)):
        for sub, d in sd.items():
            for n, t in d.items():
                data[f"params/{who}/{sub}/{n}"] = t
    for sub, d in student.items():
        for n in d:
            data[f"adam/exp_avg/student/{sub}/{n}"] = exp_avg[sub][n]
            data[f"adam/exp_avg_sq/student/{sub}/{n}"] = exp_avg_sq[sub][n]
    for sub, n, _, lm, wm, last in O.param_table(skeleton, cfg):
        data[f"adam/lr_mult/student/{sub}/{n}"] = torch.tensor(lm, dtype=torch.float64)
        data[f"adam/wd_mult/student/{sub}/{n}"] = torch.tensor(wm, dtype=torch.float64)
        data[f"adam/last_layer/student/{sub}/{n}"] = torch.tensor(int(last), dtype=torch.uint8)

    data.update(O.run_step(cfg, student, teacher, exp_avg, exp_avg_sq, inp, dtype))

    attrs = O.config_attrs(cfg)
    if not cfg.separate_ibot_head:                       # shared head: ibot sizes = dino sizes
        for k in ("ibot_K", "ibot_bottleneck", "ibot_hidden"):
            del attrs[k]
    for k in ("ffn", "layerscale"):                     # written only when not the default
        if attrs[k] == getattr(O.StepConfig, k):
            del attrs[k]
    attrs.update(common_attrs(dtype))
    attrs.update({"seed": seed, "n_masked_patches": int(inp.mask_indices.numel()),
                  "n_global_patches": cfg.n_global_patches, "n_local_patches": cfg.n_local_patches,
                  "ibot_out_dim": cfg.ibot_out_dim, "adam_step_after": cfg.adam_step + 1,
                  "n_loss_terms": O.n_loss_terms(cfg.n_local)})
    return attrs, data


def build_resolution_case(dtype=torch.float64):
    cfg = RES_CFG
    g = torch.Generator().manual_seed(RES_SEED)
    vit = O.ViT(cfg)
    sd = {n: random_param("backbone", n, tuple(p.shape), g) for n, p in vit.named_parameters()}
    data = {f"params/backbone/{n}": t for n, t in sd.items()}
    xs = {(H, W): torch.randn(RES_BATCH, cfg.in_chans, H, W, generator=g) for H, W in RESOLUTIONS}
    vit = vit.to(dtype)
    O.load_state(torch.nn.ModuleDict({"backbone": vit}), {"backbone": sd})
    with torch.no_grad():
        for (H, W), x in xs.items():
            key = f"{H}x{W}"
            res = vit(x.to(dtype))
            data[f"inputs/x_{key}"] = x
            data[f"outputs/{key}/cls"] = res["cls"]
            data[f"outputs/{key}/reg"] = res["reg"]
            data[f"outputs/{key}/patch"] = res["patch"]
            data[f"outputs/{key}/pos_embed"] = vit.pos_embed_for(H, W).detach().clone()
            if (H, W) != (cfg.global_size, cfg.global_size):
                data[f"pos_embed_size_form/{key}"] = O.interpolate_pos_embed(
                    vit.pos_embed, H, W, cfg.patch_size, offset=0.0)
    attrs = {k: v for k, v in O.config_attrs(cfg).items()
             if k in ("embed_dim", "depth", "num_heads", "mlp_ratio", "patch_size", "in_chans",
                      "num_register_tokens", "global_size", "interpolate_offset")}
    attrs.update(common_attrs(dtype))
    attrs.update({"seed": RES_SEED, "batch": RES_BATCH,
                  "resolutions": np.array(RESOLUTIONS, dtype=np.int64)})
    return attrs, data


def build_sinkhorn_koleo_case(dtype=torch.float64):
    g = torch.Generator().manual_seed(SK_SEED)
    # logits on a 2^-16 grid so that adding SK_SHIFT is exact in float32
    logits = torch.round(torch.randn(SK_ROWS, SK_K, generator=g) * 0.5 * 65536) / 65536
    shifted = logits + SK_SHIFT
    assert torch.equal(shifted - SK_SHIFT, logits)
    data = {"sinkhorn/logits": logits, "sinkhorn/logits_shifted": shifted}
    # targets of logits_shifted are the same (checked in check_fixtures.py), so stored once
    data["sinkhorn/targets"] = O.sinkhorn_knopp(logits.to(dtype), SK_TEMP, B_tot=SK_ROWS, n_iter=3)

    x = torch.randn(KOLEO_N, KOLEO_D, generator=g)
    x[5] = 1.3 * x[2] + 1e-3 * torch.randn(KOLEO_D, generator=g)   # near-duplicate direction
    xd = x.to(dtype).clone().requires_grad_(True)
    loss, idx = O.koleo_loss(xd, return_index=True)
    loss.backward()
    xn = xd.detach() / xd.detach().norm(dim=-1, keepdim=True).clamp_min(O.KOLEO_EPS)
    data.update({"koleo/x": x, "koleo/loss": loss.detach(), "koleo/grad": xd.grad,
                 "koleo/nn_index": idx,
                 "koleo/distances": (xn - xn[idx] + O.KOLEO_EPS).norm(dim=-1)})
    attrs = common_attrs(dtype)
    attrs.update({"seed": SK_SEED, "sinkhorn_temperature": SK_TEMP, "sinkhorn_iterations": 3,
                  "sinkhorn_B_tot": SK_ROWS, "sinkhorn_shift": SK_SHIFT,
                  "koleo_eps": O.KOLEO_EPS, "koleo_weight": 1.0})
    return attrs, data


def all_cases(dtype=torch.float64):
    """name → (attrs, data), in a fixed order."""
    cases = {}
    for name, (cfg, seed) in step_cases().items():
        cases[name] = build_step_case(cfg, seed, dtype)
    cases["vit_resolutions"] = build_resolution_case(dtype)
    cases["sinkhorn_koleo"] = build_sinkhorn_koleo_case(dtype)
    return cases


# ----------------------------------------------------------------------------------
# HDF5 writing
# ----------------------------------------------------------------------------------

def to_numpy(t: torch.Tensor) -> np.ndarray:
    """bool → uint8, integers → int64 (uint8 kept), float64 scalars in adam/*_mult kept, floats → float32."""
    t = t.detach().cpu()
    if t.dtype == torch.bool:
        return t.numpy().astype(np.uint8)
    if t.dtype == torch.uint8:
        return t.numpy()
    if not t.is_floating_point():
        return t.numpy().astype(np.int64)
    return t.numpy().astype(np.float32)


def write_h5(path: str, attrs: dict, data: dict):
    if os.path.exists(path):
        os.remove(path)
    with h5py.File(path, "w", track_order=False) as f:
        for k in sorted(attrs):
            v = attrs[k]
            f.attrs[k] = np.bytes_(str(v)) if isinstance(v, str) else v   # fixed-length ASCII
        for k in sorted(data):
            v = data[k]
            arr = v.numpy() if (k.startswith("adam/") and "_mult/" in k) else to_numpy(v)
            f.create_dataset(k, data=arr, track_times=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="float64")
    ap.add_argument("--out", default=None, help="output dir (default tests/reference/fixtures, "
                    "or fixtures_float32 with --dtype float32)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = a.out or os.path.join(HERE, "fixtures" if a.dtype == "float64" else "fixtures_float32")
    os.makedirs(out, exist_ok=True)
    total = 0
    for name, (attrs, data) in all_cases(DTYPES[a.dtype]).items():
        path = os.path.join(out, name + ".h5")
        write_h5(path, attrs, data)
        size = os.path.getsize(path)
        total += size
        print(f"{path}: {len(data)} datasets, {size} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
