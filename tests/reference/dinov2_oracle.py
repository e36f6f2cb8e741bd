"""PyTorch oracle for one DINOv2 (RAD-DINO) training step.

A compact, independent re-implementation of the semantics of the DINOv2 training code
(facebookresearch/dinov2): ViT backbone (dinov2/models/vision_transformer.py,
dinov2/layers/), DINO heads (dinov2/layers/dino_head.py), teacher targets and losses
(dinov2/loss/), per-sub-module gradient clipping, AdamW parameter groups and teacher EMA
(dinov2/train/train.py, dinov2/utils/param_groups.py, dinov2/train/ssl_meta_arch.py).

Every random choice (crops, masks, drop-path subsets) is injected, so a C port can
reproduce the step exactly.  Parameter names equal DINOv2 state-dict names.
The computation runs in whatever dtype the modules/inputs have (the fixtures use
float64 on float32-representable inputs).
"""

import math
from dataclasses import dataclass, asdict
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LN_EPS = 1e-6
HEAD_NORM_EPS = 1e-12
KOLEO_EPS = 1e-8
CLIP_EPS = 1e-6
BICUBIC_A = -0.75


# ----------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------

@dataclass
class StepConfig:
    """Every value that defines one training step (stored as HDF5 attributes)."""
    embed_dim: int = 32
    depth: int = 2
    num_heads: int = 4
    mlp_ratio: int = 4
    ffn: str = "mlp"                      # or "swiglu" (DINOv2's "swiglufused": SwiGLUFFNFused)
    layerscale: float = 1e-5              # LayerScale init; 0 = no LayerScale (init_values None)
    patch_size: int = 8
    in_chans: int = 3
    num_register_tokens: int = 0
    global_size: int = 32
    local_size: int = 16
    n_local: int = 2
    batch_size: int = 2
    K: int = 128
    bottleneck: int = 32
    hidden: int = 96
    separate_ibot_head: bool = False
    ibot_K: int = 128
    ibot_bottleneck: int = 32
    ibot_hidden: int = 96
    centering: str = "centering"          # or "sinkhorn_knopp"
    koleo_weight: float = 0.1
    dino_loss_weight: float = 1.0
    ibot_loss_weight: float = 1.0
    drop_path_rate: float = 0.0
    teacher_temp: float = 0.04
    student_temp: float = 0.1
    center_momentum: float = 0.9
    sinkhorn_iterations: int = 3
    interpolate_offset: float = 0.1
    lr: float = 1e-3
    last_layer_lr: float = 1e-3
    wd: float = 0.04
    momentum: float = 0.99
    layerwise_decay: float = 0.9
    patch_embed_lr_mult: float = 0.2
    clip_grad: float = 3.0
    adam_step: int = 4                    # step count BEFORE the step (the step done is adam_step+1)
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-8

    @property
    def n_global_patches(self) -> int:
        return (self.global_size // self.patch_size) ** 2

    @property
    def n_local_patches(self) -> int:
        return (self.local_size // self.patch_size) ** 2

    @property
    def head_K(self) -> Dict[str, int]:
        k = {"dino_head": self.K}
        if self.separate_ibot_head:
            k["ibot_head"] = self.ibot_K
        return k

    @property
    def ibot_out_dim(self) -> int:
        return self.ibot_K if self.separate_ibot_head else self.K


# ----------------------------------------------------------------------------------
# Positional-embedding interpolation (DinoVisionTransformer.interpolate_pos_encoding),
# explicit bicubic
# ----------------------------------------------------------------------------------

def cubic_weights(t: float, A: float = BICUBIC_A) -> List[float]:
    """Weights of taps i0-1, i0, i0+1, i0+2 for fractional offset t (PyTorch's Keys cubic)."""
    def c1(x):
        return ((A + 2) * x - (A + 3)) * x * x + 1

    def c2(x):
        return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A

    return [c2(t + 1), c1(t), c1(1 - t), c2(2 - t)]


def bicubic_matrix(M: int, g: int, scale: Optional[float]) -> torch.Tensor:
    """[g, M] float64 matrix of 1-D bicubic weights (align_corners=False, clamped taps).

    scale given  -> src = (o + 0.5) / scale - 0.5   (scale-factor form)
    scale None   -> src = (o + 0.5) * M / g - 0.5    (size form)
    """
    W = torch.zeros(g, M, dtype=torch.float64)
    for o in range(g):
        src = (o + 0.5) / scale - 0.5 if scale is not None else (o + 0.5) * (M / g) - 0.5
        i0 = math.floor(src)
        t = src - i0
        for k, w in zip(range(-1, 3), cubic_weights(t)):
            W[o, min(max(i0 + k, 0), M - 1)] += w
    return W


def interpolate_pos_embed(pos_embed: torch.Tensor, H: int, W: int, patch_size: int,
                          offset: float = 0.1) -> torch.Tensor:
    """pos_embed [1, 1+N0, D] -> [1, 1 + (H/p)(W/p), D] as DinoVisionTransformer does."""
    N0 = pos_embed.shape[1] - 1
    g0, g1 = H // patch_size, W // patch_size
    if g0 * g1 == N0 and H == W:
        return pos_embed
    M = int(math.sqrt(N0))
    assert M * M == N0
    D = pos_embed.shape[2]
    if offset:
        s0, s1 = (g0 + offset) / M, (g1 + offset) / M
        assert math.floor(M * s0) == g0 and math.floor(M * s1) == g1
        R, C = bicubic_matrix(M, g0, s0), bicubic_matrix(M, g1, s1)
    else:
        R, C = bicubic_matrix(M, g0, None), bicubic_matrix(M, g1, None)
    R, C = R.to(pos_embed.dtype), C.to(pos_embed.dtype)
    grid = pos_embed[0, 1:].reshape(M, M, D)
    out = torch.einsum("ia,jb,abd->ijd", R, C, grid).reshape(1, g0 * g1, D)
    return torch.cat([pos_embed[:, :1], out], dim=1)


# ----------------------------------------------------------------------------------
# Backbone (DinoVisionTransformer, dinov2/layers/block.py)
# ----------------------------------------------------------------------------------

class PatchEmbed(nn.Module):
    def __init__(self, in_chans: int, dim: int, p: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=p, stride=p)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)      # [b, n, D], row-major patches


class LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * self.gamma


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, T, D = x.shape
        hd = D // self.num_heads
        qkv = self.qkv(x).reshape(b, T, 3, self.num_heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]                     # [b, heads, T, hd]
        a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hd), dim=-1)
        o = (a @ v).transpose(1, 2).reshape(b, T, D)
        return self.proj(o)


def swiglu_hidden(hidden: int) -> int:
    """SwiGLUFFNFused's width for hidden_features = int(D * mlp_ratio): 2/3 of it, rounded up to
    a multiple of 8 (dinov2/layers/swiglu_ffn.py)."""
    return (int(hidden * 2 / 3) + 7) // 8 * 8


class SwiGLUFFN(nn.Module):
    """SwiGLUFFNFused without xFormers: w3(silu(x1) * x2), [x1 x2] = w12(x) split in halves."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        h = swiglu_hidden(hidden)
        self.w12 = nn.Linear(dim, 2 * h)
        self.w3 = nn.Linear(h, dim)

    def forward(self, x):
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))                 # exact erf GELU


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: int, ffn: str = "mlp",
                 layerscale: float = 1e-5):
        super().__init__()
        ffn_class = {"mlp": Mlp, "swiglu": SwiGLUFFN}[ffn]
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim) if layerscale > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = ffn_class(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim) if layerscale > 0 else nn.Identity()

    def attn_branch(self, x):
        return self.attn(self.norm1(x))

    def ffn_branch(self, x):
        return self.mlp(self.norm2(x))

    def forward(self, x, subsets: Optional[Dict[str, torch.Tensor]] = None):
        """subsets: None (no drop path) or {'attn': S, 'ffn': S} exact-count index subsets
        (drop_add_residual_stochastic_depth)."""
        if subsets is None:
            x = x + self.ls1(self.attn_branch(x))
            return x + self.ls2(self.ffn_branch(x))
        x = drop_add_residual(x, subsets["attn"], self.attn_branch, self.ls1)
        return drop_add_residual(x, subsets["ffn"], self.ffn_branch, self.ls2)


def drop_add_residual(x, S: torch.Tensor, branch, ls: nn.Module):
    """x[S] += (b/|S|) * gamma * branch(x[S]); the other samples skip the branch."""
    b = x.shape[0]
    r = ls(branch(x[S])) * (b / S.numel())
    return x.index_add(0, S, r)


class ViT(nn.Module):
    """DinoVisionTransformer with an mlp or SwiGLU FFN, optional LayerScale and registers."""

    def __init__(self, cfg: StepConfig):
        super().__init__()
        D, p = cfg.embed_dim, cfg.patch_size
        self.patch_size = p
        self.interpolate_offset = cfg.interpolate_offset
        self.num_register_tokens = cfg.num_register_tokens
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.n_global_patches, D))
        if cfg.num_register_tokens > 0:
            self.register_tokens = nn.Parameter(torch.zeros(1, cfg.num_register_tokens, D))
        self.mask_token = nn.Parameter(torch.zeros(1, D))
        self.patch_embed = PatchEmbed(cfg.in_chans, D, p)
        self.blocks = nn.ModuleList(
            [Block(D, cfg.num_heads, cfg.mlp_ratio, cfg.ffn, cfg.layerscale)
             for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(D, eps=LN_EPS)

    def pos_embed_for(self, H: int, W: int) -> torch.Tensor:
        return interpolate_pos_embed(self.pos_embed, H, W, self.patch_size, self.interpolate_offset)

    def prepare_tokens(self, x, masks=None):
        H, W = x.shape[-2:]
        t = self.patch_embed(x)
        if masks is not None:
            t = torch.where(masks.unsqueeze(-1), self.mask_token.to(t.dtype).unsqueeze(0), t)
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], dim=1)
        t = t + self.pos_embed_for(H, W)
        if self.num_register_tokens > 0:
            t = torch.cat([t[:, :1], self.register_tokens.expand(t.shape[0], -1, -1), t[:, 1:]], dim=1)
        return t

    def forward(self, x, masks=None, drop_path: Optional[List[Dict[str, torch.Tensor]]] = None):
        """Returns dict: cls [b,D], reg [b,R,D], patch [b,n,D], tokens (list: embed, block outputs), norm."""
        t = self.prepare_tokens(x, masks)
        tokens = [t]
        for i, blk in enumerate(self.blocks):
            t = blk(t, None if drop_path is None else drop_path[i])
            tokens.append(t)
        z = self.norm(t)
        R = self.num_register_tokens
        return {"cls": z[:, 0], "reg": z[:, 1:1 + R], "patch": z[:, 1 + R:],
                "tokens": tokens, "norm": z}


# ----------------------------------------------------------------------------------
# Head (DINOHead)
# ----------------------------------------------------------------------------------

class WeightNormLinear(nn.Module):
    """Bias-free linear layer with weight = g * v / ||v_row|| (torch weight_norm, dim=0)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.weight_g = nn.Parameter(torch.ones(out_dim, 1))
        self.weight_v = nn.Parameter(torch.zeros(out_dim, in_dim))

    def weight(self):
        return self.weight_g * self.weight_v / self.weight_v.norm(dim=1, keepdim=True)

    def forward(self, x):
        return x @ self.weight().t()


class DINOHead(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden: int, bottleneck: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, bottleneck))
        self.last_layer = WeightNormLinear(bottleneck, out_dim)

    def forward(self, x):
        """Returns (normalised bottleneck z, logits)."""
        z = self.mlp(x)
        z = z / z.norm(dim=-1, keepdim=True).clamp_min(HEAD_NORM_EPS)
        return z, self.last_layer(z)


def build_model(cfg: StepConfig) -> nn.ModuleDict:
    """Student or teacher: backbone, dino_head, and ibot_head if separate."""
    m = {"backbone": ViT(cfg),
         "dino_head": DINOHead(cfg.embed_dim, cfg.K, cfg.hidden, cfg.bottleneck)}
    if cfg.separate_ibot_head:
        m["ibot_head"] = DINOHead(cfg.embed_dim, cfg.ibot_K, cfg.ibot_hidden, cfg.ibot_bottleneck)
    return nn.ModuleDict(m)


def ibot_head_of(model: nn.ModuleDict) -> nn.Module:
    return model["ibot_head"] if "ibot_head" in model else model["dino_head"]


# ----------------------------------------------------------------------------------
# Teacher targets (softmax_center_teacher, sinkhorn_knopp_teacher)
# ----------------------------------------------------------------------------------

def softmax_center(logits, center, temp):
    """Centering mode: softmax((t - c) / temp) over prototypes."""
    return torch.softmax((logits - center) / temp, dim=-1)


def sinkhorn_knopp(logits, temp, B_tot, n_iter: int = 3, subtract_max: bool = True):
    """Sinkhorn-Knopp targets [rows, K] (single rank).

    subtract_max subtracts the global max of logits/temp before exp: mathematically
    neutral (cancels in the first normalisation), avoids overflow.
    """
    s = logits / temp
    if subtract_max:
        s = s - s.max()
    Q = torch.exp(s).t()                                     # [K, rows]
    K = Q.shape[0]
    Q = Q / Q.sum()
    for _ in range(n_iter):
        Q = Q / Q.sum(dim=1, keepdim=True)
        Q = Q / K
        Q = Q / Q.sum(dim=0, keepdim=True)
        Q = Q / B_tot
    Q = Q * B_tot
    return Q.t()


# ----------------------------------------------------------------------------------
# Losses (DINOLoss, iBOTPatchLoss, KoLeoLoss)
# ----------------------------------------------------------------------------------

def cross_entropy_rows(targets, student_logits, student_temp):
    """CE(q, s) = -sum_k q_k log_softmax(s/temp)_k, per row."""
    return -(targets * F.log_softmax(student_logits / student_temp, dim=-1)).sum(-1)


def n_loss_terms(n_local: int) -> int:
    """Z = n_glob_terms + n_loc_terms = 2 + max(2 n_l, 1)."""
    return 2 + max(2 * n_local, 1)


def dino_local_loss(t_dino, s_local, n_local, student_temp):
    """t_dino [2B,K] (swapped order), s_local [n_l B, K] crop-major."""
    B = t_dino.shape[0] // 2
    T = t_dino.view(2, B, -1)
    total = 0.0
    for j in range(n_local):
        s = s_local[j * B:(j + 1) * B]
        for g in range(2):
            total = total + cross_entropy_rows(T[g], s, student_temp).mean()
    return total / n_loss_terms(n_local)


def dino_global_loss(t_dino, s_global, n_local, student_temp):
    """(2/Z) mean_r CE(T_swapped[r], s_g[r]); same-view pairs never occur."""
    return 2.0 * cross_entropy_rows(t_dino, s_global, student_temp).mean() / n_loss_terms(n_local)


def ibot_loss(t_ibot, s_masked, masks_weight, n_images, student_temp):
    """(1/(2B)) sum_p masks_weight[p] CE(q_m[p], s_m[p]); n_images = 2B."""
    ce = cross_entropy_rows(t_ibot, s_masked, student_temp)
    return (ce * masks_weight).sum() / n_images


def koleo_nn_index(x):
    """Nearest neighbour (max cosine, diagonal set to -1) of each row; no gradient."""
    with torch.no_grad():
        xn = x / x.norm(dim=-1, keepdim=True).clamp_min(KOLEO_EPS)
        dots = xn @ xn.t()
        dots.fill_diagonal_(-1)
        return dots.argmax(dim=1)


def koleo_loss(x, return_index: bool = False):
    """-mean_i log(||x̂_i - x̂_j(i) + 1e-8|| + 1e-8), x̂ = x / max(||x||, 1e-8)."""
    xn = x / x.norm(dim=-1, keepdim=True).clamp_min(KOLEO_EPS)
    idx = koleo_nn_index(x)
    d = (xn - xn[idx] + KOLEO_EPS).norm(dim=-1)
    loss = -torch.log(d + KOLEO_EPS).mean()
    return (loss, idx) if return_index else loss


# ----------------------------------------------------------------------------------
# Optimisation (param_groups.py, train.py, SSLMetaArch.update_teacher)
# ----------------------------------------------------------------------------------

EMBED_NAMES = ("pos_embed", "patch_embed", "mask_token", "cls_token", "register_tokens")


def lr_wd_multipliers(sub: str, name: str, depth: int, layerwise_decay: float,
                      patch_embed_lr_mult: float):
    """(lr_mult, wd_mult, is_last_layer) for parameter `name` of student sub-module `sub`
    (get_params_groups_with_decay)."""
    if sub == "backbone":
        if any(k in name for k in EMBED_NAMES):
            layer_id = 0
        elif name.startswith("blocks."):
            layer_id = int(name.split(".")[1]) + 1
        else:
            layer_id = depth + 1
        lr_mult = layerwise_decay ** (depth + 1 - layer_id)
    else:
        lr_mult = 1.0
    if "patch_embed" in name:
        lr_mult *= patch_embed_lr_mult
    wd_mult = 0.0 if (name.endswith(".bias") or "norm" in name or "gamma" in name) else 1.0
    return lr_mult, wd_mult, "last_layer" in name


def param_table(student: nn.ModuleDict, cfg: StepConfig):
    """[(sub, name, param, lr_mult, wd_mult, is_last_layer)] in named_parameters order."""
    rows = []
    for sub, m in student.items():
        for name, p in m.named_parameters():
            lm, wm, last = lr_wd_multipliers(sub, name, cfg.depth, cfg.layerwise_decay,
                                             cfg.patch_embed_lr_mult)
            rows.append((sub, name, p, lm, wm, last))
    return rows


def build_adamw(student: nn.ModuleDict, cfg: StepConfig) -> torch.optim.AdamW:
    """torch AdamW, one group per parameter with lr = (last-layer lr | lr)*lr_mult, wd = wd*wd_mult."""
    groups = []
    for sub, name, p, lm, wm, last in param_table(student, cfg):
        base = cfg.last_layer_lr if last else cfg.lr
        groups.append({"params": [p], "lr": base * lm, "weight_decay": cfg.wd * wm,
                       "name": f"{sub}.{name}"})
    return torch.optim.AdamW(groups, betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps,
                             foreach=False)


def clip_grads_(module: nn.Module, max_norm: float):
    """FSDP clip_grad_norm_: coef = min(1, max/(n + 1e-6)); returns (pre-clip norm, coef)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    n = torch.sqrt(sum((g * g).sum() for g in grads))
    coef = torch.clamp(max_norm / (n + CLIP_EPS), max=1.0)
    for g in grads:
        g.mul_(coef)
    return n, coef


@torch.no_grad()
def ema_update_(teacher: nn.ModuleDict, student: nn.ModuleDict, m: float):
    """θ_t ← m θ_t + (1 − m) θ_s for every parameter of every sub-module."""
    for sub in teacher.keys():
        sp = dict(student[sub].named_parameters())
        for name, pt in teacher[sub].named_parameters():
            pt.mul_(m).add_(sp[name], alpha=1.0 - m)


# ----------------------------------------------------------------------------------
# Inputs container
# ----------------------------------------------------------------------------------

@dataclass
class StepInputs:
    global_crops: torch.Tensor            # [2B, C, H, W] crop-major
    local_crops: torch.Tensor             # [n_l B, C, h, w] crop-major
    masks: torch.Tensor                   # [2B, N] bool
    mask_indices: torch.Tensor            # [M] int64, ascending flat indices into 2B*N
    masks_weight: torch.Tensor            # [M]
    center_dino: Optional[torch.Tensor] = None   # [K] (centering mode)
    center_ibot: Optional[torch.Tensor] = None   # [K_ibot]
    drop_path: Optional[Dict[str, List[Dict[str, torch.Tensor]]]] = None  # {'global'|'local': per block}


# ----------------------------------------------------------------------------------
# One training step (do_train around SSLMetaArch.forward_backward, single rank)
# ----------------------------------------------------------------------------------

def teacher_targets(cfg: StepConfig, teacher: nn.ModuleDict, inp: StepInputs, out: dict):
    """Teacher forward (no grad) → (DINO targets [2B,K] swapped, iBOT targets [M,K_ibot])."""
    B = cfg.batch_size
    with torch.no_grad():
        T = teacher["backbone"](inp.global_crops)
        tcls = torch.cat([T["cls"][B:], T["cls"][:B]])
        tpat = T["patch"].flatten(0, 1)[inp.mask_indices]
        z_c, l_c = teacher["dino_head"](tcls)
        z_m, l_m = ibot_head_of(teacher)(tpat)
        tt = cfg.teacher_temp
        if cfg.centering == "centering":
            t_dino = softmax_center(l_c, inp.center_dino, tt)
            t_ibot = softmax_center(l_m, inp.center_ibot, tt)
            mean_dino, mean_ibot = l_c.mean(0), l_m.mean(0)
            mom = cfg.center_momentum
            out["intermediate/center/dino_batch_mean"] = mean_dino
            out["intermediate/center/ibot_batch_mean"] = mean_ibot
            out["after/center/dino"] = inp.center_dino * mom + mean_dino * (1 - mom)
            out["after/center/ibot"] = inp.center_ibot * mom + mean_ibot * (1 - mom)
        elif cfg.centering == "sinkhorn_knopp":
            n = cfg.sinkhorn_iterations
            t_dino = sinkhorn_knopp(l_c, tt, B_tot=2 * B, n_iter=n)
            t_ibot = sinkhorn_knopp(l_m, tt, B_tot=l_m.shape[0], n_iter=n)
        else:
            raise ValueError(cfg.centering)
    out["intermediate/teacher/cls"] = T["cls"]
    out["intermediate/teacher/patch"] = T["patch"]
    if cfg.num_register_tokens > 0:
        out["intermediate/teacher/reg"] = T["reg"]
    out["intermediate/teacher/patch_masked"] = tpat
    out["intermediate/teacher/head/cls/bottleneck"] = z_c
    out["intermediate/teacher/head/cls/logits"] = l_c
    out["intermediate/teacher/head/masked/bottleneck"] = z_m
    out["intermediate/teacher/head/masked/logits"] = l_m
    out["intermediate/teacher/targets/dino"] = t_dino
    out["intermediate/teacher/targets/ibot"] = t_ibot
    return t_dino, t_ibot


def student_losses(cfg: StepConfig, student: nn.ModuleDict, inp: StepInputs,
                   t_dino, t_ibot, out: dict, koleo_group: int = 0):
    """Student forward and the backpropagated loss L of SSLMetaArch.forward_backward (returns L).

    koleo_group > 0: KoLeo neighbourhoods are groups of that many images per crop (rdino's
    pretrain.group_size); each group's term counts n/B of the crop's mean.  0 = the whole batch
    (DINOv2)."""
    B, st = cfg.batch_size, cfg.student_temp
    dp = inp.drop_path or {}
    G = student["backbone"](inp.global_crops, masks=inp.masks, drop_path=dp.get("global"))
    Lc = student["backbone"](inp.local_crops, drop_path=dp.get("local"))
    for tag, res, x in (("global", G, inp.global_crops), ("local", Lc, inp.local_crops)):
        pe = student["backbone"].pos_embed_for(*x.shape[-2:])
        out[f"intermediate/student/{tag}/pos_embed"] = pe.detach().clone()   # may be the Parameter
        out[f"intermediate/student/{tag}/embed"] = res["tokens"][0]
        for i, t in enumerate(res["tokens"][1:]):
            out[f"intermediate/student/{tag}/blocks.{i}"] = t
        out[f"intermediate/student/{tag}/norm"] = res["norm"]

    z_l, s_l = student["dino_head"](Lc["cls"])
    z_g, s_g = student["dino_head"](G["cls"])
    z_m, s_m = ibot_head_of(student)(G["patch"].flatten(0, 1)[inp.mask_indices])
    for tag, z, s in (("local", z_l, s_l), ("global", z_g, s_g), ("masked", z_m, s_m)):
        out[f"intermediate/student/head/{tag}/bottleneck"] = z
        out[f"intermediate/student/head/{tag}/logits"] = s

    L_local = dino_local_loss(t_dino, s_l, cfg.n_local, st)
    L_global = dino_global_loss(t_dino, s_g, cfg.n_local, st)
    L_ibot = ibot_loss(t_ibot, s_m, inp.masks_weight, 2 * B, st)
    kl, idx = [], []
    group = koleo_group if koleo_group > 0 else B
    for c in range(2):
        crop = G["cls"][c * B:(c + 1) * B]
        parts = [koleo_loss(crop[g0:g0 + group], return_index=True) for g0 in range(0, B, group)]
        kl.append(sum(l * (len(i) / B) for l, i in parts))
        idx.append(torch.cat([i + g0 for (_, i), g0 in zip(parts, range(0, B, group))]))
    L_koleo = cfg.koleo_weight * (kl[0] + kl[1])
    out["intermediate/koleo/per_crop"] = torch.stack(kl)
    out["intermediate/koleo/nn_index"] = torch.stack(idx)

    total = cfg.dino_loss_weight * (L_local + L_global) + L_koleo + cfg.ibot_loss_weight * L_ibot
    out["loss/dino_local"] = L_local
    out["loss/dino_global"] = L_global
    out["loss/koleo"] = L_koleo
    out["loss/ibot"] = L_ibot
    out["loss/total"] = total
    return total


def set_adam_state(opt: torch.optim.AdamW, student: nn.ModuleDict, exp_avg: dict,
                   exp_avg_sq: dict, step: int):
    """Install moments {sub: {name: tensor}} and step count into the optimizer state."""
    for sub, m in student.items():
        for name, p in m.named_parameters():
            opt.state[p] = {"step": torch.tensor(float(step)),
                            "exp_avg": exp_avg[sub][name].to(p.dtype).clone(),
                            "exp_avg_sq": exp_avg_sq[sub][name].to(p.dtype).clone()}


def run_step(cfg: StepConfig, student_sd: dict, teacher_sd: dict, exp_avg: dict,
             exp_avg_sq: dict, inp: StepInputs, dtype=torch.float64) -> dict:
    """One full DINOv2 iteration.  *_sd: {sub: {name: tensor}}.  Returns {hdf5 path: tensor}."""
    student, teacher = build_pair(cfg, student_sd, teacher_sd, dtype)
    inp = cast_inputs(inp, dtype)
    out = {}

    t_dino, t_ibot = teacher_targets(cfg, teacher, inp, out)
    total = student_losses(cfg, student, inp, t_dino, t_ibot, out)
    student.zero_grad(set_to_none=True)
    total.backward()

    for sub, m in student.items():
        for name, p in m.named_parameters():
            out[f"grads/student/{sub}/{name}"] = p.grad.clone()
    for sub, m in student.items():
        n, coef = clip_grads_(m, cfg.clip_grad)
        out[f"clip/norm/{sub}"] = n
        out[f"clip/coef/{sub}"] = coef

    opt = build_adamw(student, cfg)
    set_adam_state(opt, student, exp_avg, exp_avg_sq, cfg.adam_step)
    opt.step()
    ema_update_(teacher, student, cfg.momentum)

    for sub, m in student.items():
        for name, p in m.named_parameters():
            st = opt.state[p]
            out[f"after/student/{sub}/{name}"] = p.detach().clone()
            out[f"after/adam/exp_avg/student/{sub}/{name}"] = st["exp_avg"].clone()
            out[f"after/adam/exp_avg_sq/student/{sub}/{name}"] = st["exp_avg_sq"].clone()
    for sub, m in teacher.items():
        for name, p in m.named_parameters():
            out[f"after/teacher/{sub}/{name}"] = p.detach().clone()
    out["after/adam/step"] = torch.tensor(int(opt.state[next(student.parameters())]["step"].item()))
    return {k: v.detach() for k, v in out.items()}


def build_pair(cfg: StepConfig, student_sd: dict, teacher_sd: dict, dtype):
    """Student and teacher in dtype from state dicts; the teacher takes no gradients."""
    student, teacher = build_model(cfg).to(dtype), build_model(cfg).to(dtype)
    load_state(student, student_sd)
    load_state(teacher, teacher_sd)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return student, teacher


def load_state(model: nn.ModuleDict, sd: dict):
    """Copy {sub: {name: tensor}} into model (cast to the model's dtype)."""
    with torch.no_grad():
        for sub, m in model.items():
            params = dict(m.named_parameters())
            assert set(params) == set(sd[sub]), (sub, set(params) ^ set(sd[sub]))
            for name, p in params.items():
                p.copy_(sd[sub][name])


def cast_inputs(inp: StepInputs, dtype) -> StepInputs:
    """Floating inputs → dtype; index/bool tensors unchanged."""
    def c(t):
        return None if t is None else (t.to(dtype) if t.is_floating_point() else t)
    return StepInputs(c(inp.global_crops), c(inp.local_crops), inp.masks, inp.mask_indices,
                      c(inp.masks_weight), c(inp.center_dino), c(inp.center_ibot), inp.drop_path)


def state_dict_of(model: nn.ModuleDict) -> dict:
    """{sub: {name: detached clone}}."""
    return {sub: {n: p.detach().clone() for n, p in m.named_parameters()} for sub, m in model.items()}


def config_attrs(cfg: StepConfig) -> dict:
    """Config as plain attribute values (bools → int)."""
    d = asdict(cfg)
    return {k: (int(v) if isinstance(v, bool) else v) for k, v in d.items()}


# ----------------------------------------------------------------------------------
# Many steps (do_train's loop): the state carried from one iteration to the next
# ----------------------------------------------------------------------------------

class CosineScheduler:
    """dinov2/utils/utils.py CosineScheduler (freeze_iters unused by the training code)."""

    def __init__(self, base_value, final_value, total_iters, warmup_iters=0,
                 start_warmup_value=0):
        self.final_value = final_value
        self.total_iters = total_iters
        warmup = np.linspace(start_warmup_value, base_value, warmup_iters)
        iters = np.arange(total_iters - warmup_iters)
        cosine = final_value + 0.5 * (base_value - final_value) * (
            1 + np.cos(np.pi * iters / len(iters)))
        self.schedule = np.concatenate((warmup, cosine))

    def __getitem__(self, it):
        return self.final_value if it >= self.total_iters else self.schedule[it]


def schedules(base_lr, min_lr, epochs, warmup_epochs, freeze_last_layer_epochs, weight_decay,
              weight_decay_end, momentum_teacher, final_momentum_teacher, teacher_temp,
              warmup_teacher_temp, warmup_teacher_temp_epochs, epoch_length, global_batch,
              scaling_rule="sqrt_wrt_1024", steps=None):
    """[steps, 5] (lr, last_layer_lr, wd, momentum, teacher_temp) as dinov2/train/train.py
    builds them (build_schedulers; lr from apply_scaling_rules_to_cfg). Epoch counts times the
    epoch length are truncated to integers (numpy.linspace needs an integer count)."""
    if scaling_rule == "sqrt_wrt_1024":
        lr = base_lr * math.sqrt(global_batch / 1024.0)
    elif scaling_rule == "linear_wrt_256":
        lr = base_lr * global_batch / 256.0
    else:
        lr = base_lr
    total = int(epochs) * int(epoch_length)
    lr_s = CosineScheduler(lr, min_lr, total, int(warmup_epochs * epoch_length))
    last = CosineScheduler(lr, min_lr, total, int(warmup_epochs * epoch_length))
    last.schedule[:int(freeze_last_layer_epochs * epoch_length)] = 0
    wd_s = CosineScheduler(weight_decay, weight_decay_end, total)
    mom_s = CosineScheduler(momentum_teacher, final_momentum_teacher, total)
    temp_iters = int(warmup_teacher_temp_epochs * epoch_length)
    temp_s = CosineScheduler(teacher_temp, teacher_temp, temp_iters, temp_iters,
                             warmup_teacher_temp)
    steps = total + 1 if steps is None else steps
    return np.array([[s[it] for s in (lr_s, last, wd_s, mom_s, temp_s)] for it in range(steps)],
                    dtype=np.float64)


def train(cfg: StepConfig, student_sd: dict, teacher_sd: dict, batches, schedule,
          koleo_group: int = 0, dtype=torch.float64, snapshot_every: int = 0):
    """Runs len(schedule) iterations from the given state with fresh AdamW moments (step 0) and
    centres 0, carrying student, teacher, AdamW state and the centres (deferred update,
    apply_center_update) from step to step.

    batches: iterable of StepInputs (centres ignored); schedule: [S, 5] rows (lr, last_layer_lr,
    wd, momentum, teacher_temp) as rdino's schedules give them for each iteration.
    Returns {"loss": [S, 5] (dino_local, dino_global, koleo, ibot, total), "grad_norm": [S, n_sub],
    "snapshots": {step: (student_sd, teacher_sd)}, "student", "teacher", "exp_avg",
    "exp_avg_sq", "adam_step", "center_dino", "center_ibot"} (the centres the next step would
    use)."""
    student, teacher = build_pair(cfg, student_sd, teacher_sd, dtype)
    table = param_table(student, cfg)
    opt = torch.optim.AdamW([{"params": [p], "lr": 0.0, "weight_decay": 0.0}
                             for _, _, p, _, _, _ in table],
                            betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps, foreach=False)
    center_dino = torch.zeros(cfg.K, dtype=dtype)
    center_ibot = torch.zeros(cfg.ibot_out_dim, dtype=dtype)
    losses, norms, snapshots = [], [], {}
    keys = ("loss/dino_local", "loss/dino_global", "loss/koleo", "loss/ibot", "loss/total")
    for it, (inp, values) in enumerate(zip(batches, schedule)):
        lr, last_lr, wd, momentum, teacher_temp = (float(v) for v in values)
        for group, (_, _, _, lm, wm, last) in zip(opt.param_groups, table):
            group["lr"] = (last_lr if last else lr) * lm
            group["weight_decay"] = wd * wm
        step_cfg = StepConfig(**{**asdict(cfg), "teacher_temp": teacher_temp})
        inp = cast_inputs(StepInputs(inp.global_crops, inp.local_crops, inp.masks,
                                     inp.mask_indices, inp.masks_weight, center_dino,
                                     center_ibot, inp.drop_path), dtype)
        out = {}
        t_dino, t_ibot = teacher_targets(step_cfg, teacher, inp, out)
        total = student_losses(step_cfg, student, inp, t_dino, t_ibot, out, koleo_group)
        student.zero_grad(set_to_none=True)
        total.backward()
        norms.append([float(clip_grads_(m, cfg.clip_grad)[0]) for m in student.values()])
        opt.step()
        ema_update_(teacher, student, momentum)
        if cfg.centering == "centering":
            center_dino = out["after/center/dino"]
            if inp.mask_indices.numel() > 0:  # none masked: DINOv2 would get NaN, rdino keeps it
                center_ibot = out["after/center/ibot"]
        losses.append([float(out[k]) for k in keys])
        if snapshot_every and (it + 1) % snapshot_every == 0:
            snapshots[it + 1] = (state_dict_of(student), state_dict_of(teacher))
    states = [opt.state[p] for _, _, p, _, _, _ in table]

    def per_tensor(key):
        return {sub: {name: st[key].detach().clone() for (s, name, _, _, _, _), st
                      in zip(table, states) if s == sub} for sub in student.keys()}

    return {"loss": losses, "grad_norm": norms, "snapshots": snapshots,
            "student": state_dict_of(student), "teacher": state_dict_of(teacher),
            "exp_avg": per_tensor("exp_avg"), "exp_avg_sq": per_tensor("exp_avg_sq"),
            "adam_step": [int(st["step"].item()) for st in states],
            "center_dino": center_dino, "center_ibot": center_ibot}
