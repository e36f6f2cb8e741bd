"""Manual check (README.md here; not a test): the oracle's blocks and backbone against
facebookresearch/dinov2's own modules, for the FFN / LayerScale variants the step fixtures cover.

    XFORMERS_DISABLED=1 PYTHONPATH=<dinov2 source> python3 check_oracle_dinov2.py

dinov2.layers.Block (ffn_layer SwiGLUFFNFused or Mlp, init_values 1e-5 or None, LayerNorm eps
1e-6 as DinoVisionTransformer builds it) gets the oracle Block's parameters with strict
load_state_dict (same names and shapes); outputs and every gradient are compared in float64 at
D 16, 32 and 768. Then DinoVisionTransformer(ffn_layer="swiglufused", init_values=None, one
register) against dinov2_oracle.ViT at the step_swiglu sizes, native and interpolated grids.
torch < 2.0 lacks F.scaled_dot_product_attention, which dinov2's Attention calls: the plain
softmax(q k^T / sqrt(d)) v is installed in its place.
"""
import math
import os
import sys
from functools import partial

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import dinov2_oracle as O  # noqa: E402
from dinov2.layers.block import Block  # noqa: E402
from dinov2.layers.mlp import Mlp  # noqa: E402
from dinov2.layers.swiglu_ffn import SwiGLUFFNFused  # noqa: E402
from dinov2.models.vision_transformer import DinoVisionTransformer  # noqa: E402

if not hasattr(F, "scaled_dot_product_attention"):
    def _sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False):
        return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1) @ v
    F.scaled_dot_product_attention = _sdpa

torch.set_num_threads(1)
torch.manual_seed(0)
D64 = torch.float64
worst = 0.0
for ffn, ls in (("swiglu", 1e-5), ("swiglu", 0.0), ("mlp", 0.0)):
    for D, H in ((16, 2), (32, 4), (768, 12)):
        ref = Block(D, H, 4.0, qkv_bias=True, init_values=ls or None,
                    norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                    ffn_layer=SwiGLUFFNFused if ffn == "swiglu" else Mlp).to(D64).eval()
        mine = O.Block(D, H, 4, ffn, ls).to(D64)
        sd = {k: torch.randn_like(v) * (0.3 if "gamma" in k else v.shape[-1] ** -0.5)
              for k, v in ref.state_dict().items()}
        ref.load_state_dict(sd)
        mine.load_state_dict(sd)
        x = torch.randn(2, 7, D, dtype=D64, requires_grad=True)
        a, b = ref(x), mine(x)
        ga = torch.autograd.grad(a.pow(2).sum(), [x] + list(ref.parameters()))
        gb = torch.autograd.grad(b.pow(2).sum(), [x] + list(mine.parameters()))
        err = max([(a - b).abs().max().item()] + [(p - q).abs().max().item() for p, q in zip(ga, gb)])
        width = mine.mlp.w3.in_features if ffn == "swiglu" else mine.mlp.fc2.in_features
        print(f"block {ffn:6s} LayerScale {'on ' if ls else 'off'} D {D:3d} hidden {width:4d}: "
              f"max |diff| (output, grads) {err:.1e}")
        worst = max(worst, err)

cfg = O.StepConfig(embed_dim=16, depth=2, num_heads=2, ffn="swiglu", layerscale=0.0, in_chans=3,
                   num_register_tokens=1, global_size=24, patch_size=8)
ref = DinoVisionTransformer(img_size=24, patch_size=8, in_chans=3, embed_dim=16, depth=2,
                            num_heads=2, mlp_ratio=4, qkv_bias=True, ffn_layer="swiglufused",
                            init_values=None, num_register_tokens=1, interpolate_offset=0.1,
                            block_chunks=0).to(D64).eval()
mine = O.ViT(cfg).to(D64)
sd = {k: torch.randn_like(v) * 0.2 for k, v in ref.state_dict().items()}
ref.load_state_dict(sd)
mine.load_state_dict(sd)
for size in (24, 16):
    x = torch.randn(2, 3, size, size, dtype=D64)
    r, m = ref.forward_features(x), mine(x)
    err = max((r["x_norm_clstoken"] - m["cls"]).abs().max().item(),
              (r["x_norm_regtokens"] - m["reg"]).abs().max().item(),
              (r["x_norm_patchtokens"] - m["patch"]).abs().max().item())
    # dinov2 interpolates the pos-embed in float32 (self.pos_embed.float()): ~3e-8 off grid
    print(f"backbone swiglufused, no LayerScale, 1 register, {size} px: max |diff| {err:.1e}")
    worst = max(worst, err if size == 24 else 0.0)
print("worst block / native-grid difference", f"{worst:.1e}")
sys.exit(0 if worst <= 1e-12 else 1)
