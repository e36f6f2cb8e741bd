"""Checks for pretraining from released weights and exporting (tests/train/test_pretrain_weights.sh):
    check_pretrain_weights.py starts_from FILE CKPT   CKPT's student backbone is FILE's tensors bit
                                                      for bit (FILE in DINOv2's names, which are
                                                      rdino's) and its configuration keeps FILE's
                                                      518 px grid and 'hf' interpolation
    check_pretrain_weights.py trained FILE CKPT LOG   the student moved away from FILE; LOG
                                                      (metrics.jsonl) has 2 steps of finite loss
    check_pretrain_weights.py exported DIR CKPT       DIR's backbone_compatible.safetensors and
                                                      dino_head.safetensors are CKPT's teacher bit
                                                      for bit; model.safetensors has transformers'
                                                      names; preprocessor_config.json records the
                                                      run's preprocessing
    check_pretrain_weights.py same CKPT_A MODEL_A CKPT_B MODEL_B MODULE...
                                                      CKPT_A's MODEL_A/MODULE tensors equal
                                                      CKPT_B's MODEL_B/MODULE tensors bit for bit"""
import json
import math
import os
import re
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "model"))
import safetensors_np  # noqa: E402


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def group(path, prefix):
    out = {}
    with h5py.File(path, "r") as f:
        f[prefix].visititems(
            lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def equal_sets(a, b, what):
    if sorted(a) != sorted(b):
        fail(f"{what}: tensors differ: {sorted(set(a) ^ set(b))[:5]}")
    for name in a:
        if a[name].shape != b[name].shape or a[name].tobytes() != b[name].tobytes():
            d = np.abs(a[name].astype(np.float64) - b[name]).max() if a[name].shape == b[name].shape else "shape"
            fail(f"{what}: {name} differs ({d})")


def starts_from(file, ckpt):
    want, _ = safetensors_np.read(file)
    equal_sets(group(ckpt, "student/backbone"), want, f"{ckpt} student/backbone vs {file}")
    with h5py.File(ckpt, "r") as f:
        config = f.attrs["config"]
    config = config.decode() if isinstance(config, bytes) else config
    for pattern in (r"\bimg_size: 518\b", r"\binterpolate_offset: 0(\s|$)",
                    r"\binterpolate_antialias: false\b"):
        if not re.search(pattern, config):
            fail(f"{ckpt}: the stored configuration lacks /{pattern}/")
    print(f"ok: student backbone = {os.path.basename(file)}, 518 px grid, hf interpolation")


def trained(file, ckpt, log):
    start, _ = safetensors_np.read(file)
    now = group(ckpt, "student/backbone")
    moved = sum(now[k].tobytes() != start[k].tobytes() for k in start)
    if moved < len(start) // 2:
        fail(f"only {moved} of {len(start)} student tensors changed in training")
    with open(log) as fh:
        lines = [json.loads(line) for line in fh]
    if [r["step"] for r in lines] != [0, 1] or not all(math.isfinite(r["total_loss"]) for r in lines):
        fail(f"metrics: {[(r['step'], r['total_loss']) for r in lines]}")
    print(f"ok: {moved} of {len(start)} tensors trained, losses {[r['total_loss'] for r in lines]}")


def exported(folder, ckpt):
    backbone, meta = safetensors_np.read(os.path.join(folder, "backbone_compatible.safetensors"))
    equal_sets(group(ckpt, "teacher/backbone"), backbone, "exported backbone vs teacher")
    head, _ = safetensors_np.read(os.path.join(folder, "dino_head.safetensors"))
    equal_sets(group(ckpt, "teacher/dino_head"), head, "exported head vs teacher")
    if meta.get("rdino.interpolate_offset") != "0" or meta.get("rdino.interpolate_antialias") != "false":
        fail(f"interpolation record {meta}")
    hf, _ = safetensors_np.read(os.path.join(folder, "model.safetensors"))
    if "embeddings.position_embeddings" not in hf or hf["embeddings.position_embeddings"].shape != (1, 1370, 48):
        fail("model.safetensors: no [1, 1370, 48] embeddings.position_embeddings")
    q = hf["encoder.layer.1.attention.attention.key.weight"]
    if q.tobytes() != backbone["blocks.1.attn.qkv.weight"][48:96].tobytes():
        fail("model.safetensors: key is not rows [D, 2D) of qkv")
    with open(os.path.join(folder, "preprocessor_config.json")) as fh:
        proc = json.load(fh)
    rec = proc.get("rdino_preprocessing", {})
    if proc["size"] != {"shortest_edge": 64} or rec.get("preprocess.normalize") != "minmax" or \
            proc["image_mean"] != [0.5307] * 3:
        fail(f"preprocessor_config.json: {proc}")
    print(f"ok: export = teacher ({len(backbone)} backbone, {len(head)} head tensors)")


def same(a, model_a, b, model_b, modules):
    for m in modules:
        equal_sets(group(a, f"{model_a}/{m}"), group(b, f"{model_b}/{m}"),
                   f"{a} {model_a}/{m} vs {b} {model_b}/{m}")
    print(f"ok: {', '.join(modules)} bit-identical")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "starts_from":
        starts_from(*args)
    elif cmd == "trained":
        trained(*args)
    elif cmd == "exported":
        exported(*args)
    elif cmd == "same":
        same(args[0], args[1], args[2], args[3], args[4:])
    else:
        fail("unknown command " + cmd)
