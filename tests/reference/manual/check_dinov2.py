"""Manual check (README.md here; not a test): facebookresearch/dinov2 loads each snapshot's
backbone_compatible.safetensors and dino_head.safetensors with strict=True and reproduces
rdino's last_hidden_state, with the interpolation recorded in the file's metadata.

    XFORMERS_DISABLED=1 PYTHONPATH=<dinov2 source> python3 check_dinov2.py SNAPSHOT...
"""
import json
import struct
import sys
from functools import partial

import numpy as np
import torch
from dinov2.layers import MemEffAttention, NestedTensorBlock as Block
from dinov2.layers.dino_head import DINOHead
from dinov2.models.vision_transformer import DinoVisionTransformer

torch.set_num_threads(1)


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    tensors = {}
    for k, v in header.items():
        b, e = v["data_offsets"]
        data = np.frombuffer(raw[8 + n + b:8 + n + e], "<f4").reshape(v["shape"]).copy()
        tensors[k] = torch.from_numpy(data)
    return tensors, meta


for d in sys.argv[1:]:
    cfg = json.load(open(f"{d}/config.json"))
    sd, meta = read_safetensors(f"{d}/backbone_compatible.safetensors")
    R = cfg.get("num_register_tokens", 0)
    m = DinoVisionTransformer(
        img_size=cfg["image_size"], patch_size=cfg["patch_size"], embed_dim=cfg["hidden_size"],
        depth=cfg["num_hidden_layers"], num_heads=cfg["num_attention_heads"],
        mlp_ratio=cfg["mlp_ratio"], qkv_bias=cfg["qkv_bias"],
        # the original-name file holds exactly rdino's tensors (config.json describes the
        # transformers model, which always has LayerScale and these biases)
        ffn_bias=any(k in sd for k in ("blocks.0.mlp.fc1.bias", "blocks.0.mlp.w12.bias")),
        proj_bias="blocks.0.attn.proj.bias" in sd,
        init_values=1.0 if "blocks.0.ls1.gamma" in sd else None,
        ffn_layer="swiglufused" if cfg["use_swiglu_ffn"] else "mlp",
        block_chunks=0, num_register_tokens=R,
        interpolate_antialias=meta["rdino.interpolate_antialias"] == "true",
        interpolate_offset=float(meta["rdino.interpolate_offset"]),
        block_fn=partial(Block, attn_class=MemEffAttention))
    loaded = m.load_state_dict(sd, strict=True)
    m.eval()
    head_sd, _ = read_safetensors(f"{d}/dino_head.safetensors")
    head = DINOHead(in_dim=64, out_dim=100, hidden_dim=96, bottleneck_dim=32, nlayers=3)
    head_loaded = head.load_state_dict(head_sd, strict=True)
    print(d, "backbone:", loaded, "head:", head_loaded, "metadata:", meta)
    for (H, W) in [(70, 70), (42, 98), (112, 112)]:
        x = np.fromfile(f"{d}/in_{H}x{W}.f32", dtype="<f4").reshape(2, 3, H, W)
        with torch.no_grad():
            o = m.forward_features(torch.from_numpy(x))
        parts = [o["x_norm_clstoken"][:, None]] + ([o["x_norm_regtokens"]] if R else [])
        y = torch.cat(parts + [o["x_norm_patchtokens"]], 1).numpy()
        want = np.fromfile(f"{d}/out_{H}x{W}.f32", dtype="<f4").reshape(y.shape)
        print(f"  {H}x{W}: max |dinov2 - rdino| = {np.abs(y - want).max():.3g}")
