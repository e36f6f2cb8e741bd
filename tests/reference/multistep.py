"""Many DINOv2 iterations: rdino against the PyTorch oracle on the same batches and schedules.

A *recording* (written by `build/tests/train/test_multistep --record CONFIG.yaml REC.h5 [EVERY]`)
holds what rdino-pretrain's loop did on one process: the exact inputs of every iteration (the
loader's crops, iBOT masks, drop-path subsets), the schedule values, the initial state, rdino's
loss terms and gradient norms per iteration, and its student/teacher every EVERY iterations.

    multistep.py oracle REC.h5 OUT.h5 [--dtype float64|float32]
        runs dinov2_oracle.train on the recording's inputs from its initial state
    multistep.py compare REC.h5 ORACLE64.h5 [ORACLE32.h5]
        per-step loss terms and parameter divergence of rdino (fp32) against the fp64 oracle,
        next to the fp32 oracle's own divergence (the rounding yardstick); the collapse
        diagnostics (DINO/iBOT terms against their uniform-prediction values)
    multistep.py fixture REC.h5 OUT.h5
        the fixture of tests/train/test_multistep.c: the recording's inputs with the crops
        rounded to fp16 (both sides then see exactly the same numbers), the initial state, and
        the oracle's schedules and trajectory on those inputs in fp64 (oracle/), and its loss
        terms in fp32 (oracle_fp32/loss, the rounding yardstick)

/usr/bin/python3 with Debian's python3-torch, h5py, numpy. See README.md, "Multi-step".
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

DTYPES = {"float64": torch.float64, "float32": torch.float32}
TERMS = ("dino_local", "dino_global", "koleo", "ibot", "total")
INT_ATTRS = ("embed_dim", "depth", "num_heads", "mlp_ratio", "patch_size", "in_chans",
             "num_register_tokens", "global_size", "local_size", "n_local", "batch_size", "K",
             "bottleneck", "hidden", "ibot_K", "ibot_bottleneck", "ibot_hidden",
             "sinkhorn_iterations")
FLOAT_ATTRS = ("koleo_weight", "dino_loss_weight", "ibot_loss_weight", "drop_path_rate",
               "student_temp", "center_momentum", "interpolate_offset", "layerwise_decay",
               "patch_embed_lr_mult", "clip_grad", "beta1", "beta2", "adam_eps")


def attrs_of(f):
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}


def step_config(a) -> O.StepConfig:
    kw = {k: int(a[k]) for k in INT_ATTRS}
    kw.update({k: float(a[k]) for k in FLOAT_ATTRS})
    kw["separate_ibot_head"] = bool(a["separate_ibot_head"])
    kw["centering"] = a["centering"]
    kw["layerscale"] = float(a["layerscale"])
    if not a["qkv_bias"]:
        raise SystemExit("the oracle's ViT has qkv biases; record with student.qkv_bias: true")
    return O.StepConfig(**kw)


def read_state(f, prefix):
    """{sub: {name: float32 tensor}} under prefix/<sub>/<name> (init/teacher: init/student when
    absent, as in the fixtures)."""
    g = f[prefix] if prefix in f else f["init/student"]
    return {sub: {name: torch.from_numpy(g[sub][name][()]) for name in g[sub]} for sub in g}


def read_batches(f, cfg: O.StepConfig):
    """StepInputs per iteration (grey crops replicated to the model's channels)."""
    inp = f["inputs"]
    steps = inp["global_crops"].shape[0]
    for it in range(steps):
        M = int(inp["n_masked"][it])
        glob = torch.from_numpy(inp["global_crops"][it].astype(np.float32))
        loc = torch.from_numpy(inp["local_crops"][it].astype(np.float32))
        if glob.shape[1] == 1 and cfg.in_chans > 1:
            glob = glob.expand(-1, cfg.in_chans, -1, -1)
            loc = loc.expand(-1, cfg.in_chans, -1, -1)
        drop = None
        if cfg.drop_path_rate > 0:
            drop = {}
            for tag in ("global", "local"):
                rows = inp["drop_path"][tag][it]            # [depth, 2, rows], -1 padded
                drop[tag] = [{br: torch.from_numpy(rows[i, j][rows[i, j] >= 0].astype(np.int64))
                              for j, br in enumerate(("attn", "ffn"))} for i in range(cfg.depth)]
        yield O.StepInputs(
            global_crops=glob, local_crops=loc,
            masks=torch.from_numpy(inp["masks"][it].astype(bool)),
            mask_indices=torch.from_numpy(inp["mask_indices"][it, :M].astype(np.int64)),
            masks_weight=torch.from_numpy(inp["masks_weight"][it, :M].astype(np.float32)),
            drop_path=drop)


def oracle_schedule(a):
    """DINOv2's schedules for the recording's settings (sched_* attributes), its steps long."""
    keys = ("base_lr", "min_lr", "epochs", "warmup_epochs", "freeze_last_layer_epochs",
            "weight_decay", "weight_decay_end", "momentum_teacher", "final_momentum_teacher",
            "teacher_temp", "warmup_teacher_temp", "warmup_teacher_temp_epochs")
    kw = {k: float(a["sched_" + k]) for k in keys}
    return O.schedules(**kw, epoch_length=int(a["sched_OFFICIAL_EPOCH_LENGTH"]),
                       global_batch=int(a["sched_global_batch"]),
                       scaling_rule=a["sched_scaling_rule"], steps=int(a["steps"]))


def run_oracle(f, dtype, snapshot_every=0):
    """The oracle's trajectory on the recording's inputs, with its own schedules."""
    a = attrs_of(f)
    cfg = step_config(a)
    torch.set_num_threads(1)
    schedule = oracle_schedule(a)
    res = O.train(cfg, read_state(f, "init/student"), read_state(f, "init/teacher"),
                  read_batches(f, cfg), schedule, int(a["koleo_group"]), DTYPES[dtype],
                  snapshot_every)
    res["schedule"] = schedule
    return res


def write_state(g, prefix, sd):
    for sub, tensors in sd.items():
        for name, t in tensors.items():
            g[f"{prefix}/{sub}/{name}"] = t.detach().to(torch.float32).numpy()


def write_result(g, res, second_moments=True):
    """The oracle's trajectory under group g."""
    g["schedule"] = res["schedule"]
    g["loss"] = np.asarray(res["loss"], dtype=np.float64)
    g["grad_norm"] = np.asarray(res["grad_norm"], dtype=np.float64)
    write_state(g, "after/student", res["student"])
    write_state(g, "after/teacher", res["teacher"])
    write_state(g, "after/adam/exp_avg/student", res["exp_avg"])
    if second_moments:
        write_state(g, "after/adam/exp_avg_sq/student", res["exp_avg_sq"])
    g["after/adam/step"] = np.asarray(res["adam_step"], dtype=np.int64)
    g["after/center/dino"] = res["center_dino"].to(torch.float32).numpy()
    g["after/center/ibot"] = res["center_ibot"].to(torch.float32).numpy()
    for step, (s, t) in res["snapshots"].items():
        write_state(g, f"snapshots/{step:06d}/student", s)
        write_state(g, f"snapshots/{step:06d}/teacher", t)


def cmd_oracle(args):
    with h5py.File(args.recording, "r") as f:
        every = int(args.snapshot_every)
        if not every and "rdino/snapshots" in f:
            steps = sorted(int(k) for k in f["rdino/snapshots"])
            every = steps[0] if steps else 0
        res = run_oracle(f, args.dtype, every)
    with h5py.File(args.out, "w") as g:
        g.attrs["oracle_dtype"] = np.bytes_(args.dtype)
        g.attrs["torch_version"] = np.bytes_(str(torch.__version__))
        write_result(g, res)


# ---- comparison ----

def flat(g, prefix, skip_key_bias=True):
    """Concatenated parameters under prefix (float64), without the key third of attn.qkv.bias
    (no true gradient: AdamW turns its rounding noise into +-lr steps in any precision, and it
    changes no output)."""
    parts = []
    for sub in sorted(g[prefix]):
        for name in sorted(g[prefix][sub]):
            v = g[prefix][sub][name][()].astype(np.float64).ravel()
            if skip_key_bias and name.endswith("attn.qkv.bias"):
                d = v.size // 3
                v = np.concatenate([v[:d], v[2 * d:]])
            parts.append(v)
    return np.concatenate(parts)


def per_tensor_rel(g1, p1, g2, p2):
    """max over tensors of max|a - b| / max|b| (key bias thirds left out), and the tensor."""
    worst, where = 0.0, ""
    for sub in g2[p2]:
        for name in g2[p2][sub]:
            a = g1[p1][sub][name][()].astype(np.float64).ravel()
            b = g2[p2][sub][name][()].astype(np.float64).ravel()
            if name.endswith("attn.qkv.bias"):
                d = b.size // 3
                a, b = np.concatenate([a[:d], a[2 * d:]]), np.concatenate([b[:d], b[2 * d:]])
            m = np.abs(b).max()
            r = np.abs(a - b).max() / m if m > 0 else np.abs(a - b).max()
            if r > worst:
                worst, where = r, f"{sub}/{name}"
    return worst, where


def cmd_compare(args):
    rec = h5py.File(args.recording, "r")
    o64 = h5py.File(args.oracle64, "r")
    o32 = h5py.File(args.oracle32, "r") if args.oracle32 else None
    a = attrs_of(rec)
    c_loss = rec["rdino/loss"][()]
    r_loss = o64["loss"][()]
    S = c_loss.shape[0]
    lnK, lnKi = math.log(a["K"]), math.log(a["ibot_K"] if a["separate_ibot_head"] else a["K"])
    nl = int(a["n_local"])
    Z = 2 + max(2 * nl, 1)
    print(f"{S} iterations, B {int(a['batch_size'])}, K {int(a['K'])}, {a['centering']}, "
          f"D {int(a['embed_dim'])}, depth {int(a['depth'])}, layerscale {a['layerscale']:.0e}, "
          f"KoLeo {a['koleo_weight']}, drop path {a['drop_path_rate']}")
    print("uniform-prediction values: DINO local %.4f, global %.4f (ln K = %.4f); iBOT <= %.4f"
          % (2 * nl / Z * lnK, 2 / Z * lnK, lnK, lnKi))
    rel = np.abs(c_loss - r_loss) / np.maximum(np.abs(r_loss), 1e-3)
    rel32 = (np.abs(o32["loss"][()] - r_loss) / np.maximum(np.abs(r_loss), 1e-3)
             if o32 else None)
    print("\nloss terms per iteration: rdino (fp32) | oracle fp64 | relative difference "
          "(oracle fp32 vs fp64)")
    hdr = "  it  " + "  ".join(f"{t:>24s}" for t in TERMS)
    print(hdr)
    marks = sorted(set(list(range(0, S, max(1, S // 20))) + [S - 1]))
    for it in marks:
        cells = []
        for k in range(len(TERMS)):
            extra = f" ({rel32[it, k]:.0e})" if rel32 is not None else ""
            cells.append(f"{c_loss[it, k]:7.4f} {r_loss[it, k]:7.4f} {rel[it, k]:.0e}{extra}")
        print(f"{it:4d}  " + "  ".join(f"{c:>24s}" for c in cells))
    print("\nlargest relative loss difference, rdino vs oracle fp64: " +
          ", ".join(f"{t} {rel[:, k].max():.2g}" for k, t in enumerate(TERMS)))
    if rel32 is not None:
        print("                                  oracle fp32 vs fp64: " +
              ", ".join(f"{t} {rel32[:, k].max():.2g}" for k, t in enumerate(TERMS)))
    sd = np.abs(rec["inputs/schedule"][()] - o64["schedule"][()]).max(axis=0)
    print("largest schedule difference, rdino vs DINOv2's CosineScheduler (lr, last-layer lr, wd,"
          " momentum, teacher temp): " + ", ".join(f"{v:.1e}" for v in sd))
    gn = np.abs(rec["rdino/grad_norm"][()][:, :o64["grad_norm"].shape[1]] - o64["grad_norm"][()])
    print("largest relative gradient-norm difference (pre-clip): %.2g"
          % (gn / np.maximum(o64["grad_norm"][()], 1e-12)).max())

    print("\nparameter divergence: |a - b| / |b| over all parameters (key-bias thirds left out),"
          " and the worst tensor's max|a - b| / max|b|")
    snaps = sorted(int(k) for k in rec["rdino/snapshots"]) if "rdino/snapshots" in rec else []
    points = [(s, f"rdino/snapshots/{s:06d}", f"snapshots/{s:06d}") for s in snaps
              if f"snapshots/{s:06d}" in o64] + [(S, "rdino/after", "after")]
    print("  step  net      rdino vs fp64 (norm, worst tensor)        fp32 oracle vs fp64")
    for s, pc, po in points:
        for net in ("student", "teacher"):
            b = flat(o64, f"{po}/{net}")
            dc = np.linalg.norm(flat(rec, f"{pc}/{net}") - b) / np.linalg.norm(b)
            wc, where = per_tensor_rel(rec, f"{pc}/{net}", o64, f"{po}/{net}")
            line = f"  {s:5d}  {net:7s}  {dc:.2e}  {wc:.2e} ({where})"
            if o32 and f"{po}/{net}" in o32:
                d32 = np.linalg.norm(flat(o32, f"{po}/{net}") - b) / np.linalg.norm(b)
                w32, _ = per_tensor_rel(o32, f"{po}/{net}", o64, f"{po}/{net}")
                line += f"   {d32:.2e}  {w32:.2e}"
            print(line)

    def collapse(loss, name):
        dino = loss[:, 0] + loss[:, 1]
        frac = dino / lnK
        first = next((i for i in range(S) if frac[i] > 0.99), None)
        print(f"  {name}: DINO (local + global) / ln K at iterations 0, {S // 4}, {S // 2}, "
              f"{S - 1}: " + ", ".join(f"{frac[i]:.4f}" for i in (0, S // 4, S // 2, S - 1)) +
              f"; first above 0.99 at iteration {first}")
    print("\ncollapse diagnostics (DINO at its uniform-prediction value means the student "
          "predicts a uniform distribution):")
    collapse(c_loss, "rdino      ")
    collapse(r_loss, "oracle fp64")
    sched = rec["inputs/schedule"][()]
    unfreeze = next((i for i in range(S) if sched[i, 1] > 0), None)
    print(f"  the last layer unfreezes at iteration {unfreeze}; lr peaks at "
          f"{sched[:, 0].max():.3g}; teacher temperature {sched[0, 4]:.3g} -> {sched[-1, 4]:.3g}")


# ---- fixture ----

def cmd_fixture(args):
    with h5py.File(args.recording, "r") as f, h5py.File(args.out + ".tmp", "w") as g:
        for k, v in f.attrs.items():
            g.attrs[k] = v
        f.copy("init/student", g, "init/student")     # the teacher starts equal to it
        inp = g.create_group("inputs")
        for key in ("masks", "n_masked", "mask_indices", "masks_weight", "drop_path/global",
                    "drop_path/local"):
            inp.create_dataset(key, data=f["inputs"][key][()], compression="gzip",
                               compression_opts=9, shuffle=True)
        for key in ("global_crops", "local_crops"):
            inp.create_dataset(key, data=f["inputs"][key][()].astype(np.float16),
                               compression="gzip", compression_opts=9, shuffle=True)
        g.attrs["crops_dtype"] = np.bytes_("float16")
        g.attrs["torch_version"] = np.bytes_(str(torch.__version__))
        g.flush()
        write_result(g.create_group("oracle"), run_oracle(g, "float64"), second_moments=False)
        # the rounding yardstick: the same oracle in fp32 (losses only)
        g["oracle_fp32/loss"] = np.asarray(run_oracle(g, "float32")["loss"], dtype=np.float64)
    os.replace(args.out + ".tmp", args.out)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("oracle")
    o.add_argument("recording")
    o.add_argument("out")
    o.add_argument("--dtype", choices=DTYPES, default="float64")
    o.add_argument("--snapshot-every", default=0,
                   help="default: the recording's snapshot period")
    c = sub.add_parser("compare")
    c.add_argument("recording")
    c.add_argument("oracle64")
    c.add_argument("oracle32", nargs="?")
    x = sub.add_parser("fixture")
    x.add_argument("recording")
    x.add_argument("out")
    args = ap.parse_args()
    {"oracle": cmd_oracle, "compare": cmd_compare, "fixture": cmd_fixture}[args.cmd](args)


if __name__ == "__main__":
    main()
