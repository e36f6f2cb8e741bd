"""Synthetic inputs for rdino-analyze, laid out as a pipeline run under one data.output_dir:
    make_study.py OUT [SEED]
writes
    OUT/embeddings/trained.h5      planted signal: features = age and sex loadings + patient
                                   effect + noise (the encoder under study); patch_mean has
                                   half the signal
    OUT/embeddings/random-init.h5  null encoder: patient effect + noise, nothing about age or sex
    OUT/shards/shard-0000{0,1}.h5  + index.json: 24x24 uint8 images whose brightness depends on
                                   sex (so the raw-pixel baseline finds sex if, and only if, it
                                   pairs every embedding row with its own image); the shards
                                   hold the images in another order than the embedding files,
                                   plus images no embedding row has
    OUT/pretrain/metrics.jsonl     a DINOv2-style log with a torn last line
    OUT/bad/...                    inputs for the error cases (see below)
    OUT/truth.json                 counts the report must show
The embedding layout is docs/FORMATS.md, "Embeddings"."""
import json
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
from verify_shards import crc32c, meta_sha256  # noqa: E402  (the documented checks)

out = sys.argv[1]
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 7
rng = np.random.default_rng(seed)
D = 24
S = 24

# Patients with 1-4 images; ages at follow-ups; ~5% unknown age / sex.
rows = []
for p in range(110):
    count = int(rng.integers(1, 5))
    age0 = rng.uniform(20, 85)
    sex = int(rng.random() < 0.5)
    split = 2 if p % 10 == 0 else 1 if p % 10 == 1 else 0
    for k in range(count):
        rows.append(dict(image_id=f"{p:05d}_{k:03d}.png", patient_id=f"P{p * 7 + 3:05d}",
                         view="PA" if rng.random() < 0.7 else "AP", age=age0 + 0.7 * k,
                         sex=sex, split=split, patient=p))
n = len(rows)
age_true = np.array([r["age"] for r in rows])
sex_true = np.array([r["sex"] for r in rows])
age = np.where(rng.random(n) < 0.05, np.nan, age_true).astype(np.float32)
sex = np.where(rng.random(n) < 0.05, -1, sex_true).astype(np.int8)
ids = np.array([r["image_id"] for r in rows], dtype="S16")
patients = np.array([r["patient_id"] for r in rows], dtype="S8")
views = np.array([r["view"] for r in rows], dtype="S2")


def put_strings(group, name, values):
    """Fixed-length UTF-8 strings, as rdino writes them (rdino's reader does not convert
    h5py's default ASCII strings)."""
    dtype = h5py.string_dtype("utf-8", values.dtype.itemsize)
    group.create_dataset(name, data=values.astype(dtype), dtype=dtype)
splits = np.array([r["split"] for r in rows], dtype=np.uint8)
pidx = np.array([r["patient"] for r in rows])


def features(signal, salt):
    """Loadings scaled so that signal 1 gives an age R2 near 0.5 and a sex AUROC near 0.9."""
    g = np.random.default_rng(seed * 1000 + salt)
    load_age, load_sex = 0.25 * g.normal(size=D), 0.35 * g.normal(size=D)
    effect = 0.5 * g.normal(size=(110, D))
    x = (signal * (np.outer((age_true - 50) / 20, load_age) + np.outer(sex_true - 0.5, load_sex))
         + effect[pidx] + g.normal(size=(n, D)))
    return x.astype(np.float32)


# Finding labels (int8: 1, 0, -1 unknown) for analysis/findings.yaml: "planted" follows sex
# (which the trained encoder carries) with 5% of the labels flipped and 10% unknown, "noise" is
# independent of everything, "rare" has 3 positive images (not estimable).
g0 = np.random.default_rng(seed + 5)
planted = np.where(g0.random(n) < 0.05, 1 - sex_true, sex_true)
FINDINGS = {"finding_planted": np.where(g0.random(n) < 0.10, -1, planted),
            "finding_noise": (g0.random(n) < 0.3).astype(int),
            "finding_rare": np.isin(np.arange(n), [3, 50, 100]).astype(int)}


def write_meta(f, o):
    g = f.create_group("meta")
    put_strings(g, "image_id", ids[o])
    put_strings(g, "patient_id", patients[o])
    put_strings(g, "view", views[o])
    for name, col, typ in (("age", age, np.float32), ("sex", sex, np.int8), ("split", splits, np.uint8)):
        g.create_dataset(name, data=col[o].astype(typ))
    for name, col in FINDINGS.items():
        g.create_dataset(name, data=col[o].astype(np.int8))


def write_embeddings(path, encoder, signal, salt, version=1, drop_last=False, rename_row=None):
    m = n - 1 if drop_last else n
    with h5py.File(path, "w") as f:
        f.attrs["format_version"] = version
        f.attrs["encoder"] = encoder
        f.attrs["checkpoint"] = "none" if signal == 0 else "pretrain/checkpoints/step-0001000.h5"
        f.attrs["model_config"] = "arch: vit_tiny\npatch_size: 8\n"
        f.attrs["resolution"] = 64
        f["cls"] = features(signal, salt)[:m]
        f["patch_mean"] = features(0.5 * signal, salt + 1)[:m]
        write_meta(f, np.arange(m))
        if rename_row is not None:
            f["meta/image_id"][rename_row] = b"renamed.png"


os.makedirs(f"{out}/embeddings", exist_ok=True)
os.makedirs(f"{out}/bad", exist_ok=True)
write_embeddings(f"{out}/embeddings/trained.h5", "trained", 1.0, 1)
write_embeddings(f"{out}/embeddings/random-init.h5", "random-init", 0.0, 2)
# Error cases: a row too few, one image renamed, an unknown format version, not HDF5.
write_embeddings(f"{out}/bad/fewer_rows.h5", "fewer", 1.2, 3, drop_last=True)
write_embeddings(f"{out}/bad/other_ids.h5", "other", 1.2, 4, rename_row=5)
write_embeddings(f"{out}/bad/future.h5", "future", 1.2, 5, version=2)
with open(f"{out}/bad/corrupt.h5", "wb") as fh:
    fh.write(b"\x89HDF\r\n\x1a\n" + bytes(rng.integers(0, 256, 2000, dtype=np.uint8)))

# Shards: images in reversed order, plus 5 images nobody embedded, split over two files.
g = np.random.default_rng(seed + 99)
order = np.arange(n)[::-1]
# Men 8 grey levels brighter on average, against a per-image brightness spread of 10.
level = 100 + 8 * sex_true[order] + 10 * g.normal(size=n)
images = np.clip(level[:, None, None] + 25 * g.normal(size=(n, S, S)), 0, 255)
extra_ids = np.array([f"extra_{i}.png" for i in range(5)], dtype="S16")
extra_patients = np.array([f"X{i:07d}" for i in range(5)], dtype="S8")
images = np.concatenate([images, np.full((5, S, S), 128.0)]).astype(np.uint8)
total = n + 5
os.makedirs(f"{out}/shards", exist_ok=True)
cut = total // 2
full = np.concatenate([order, np.full(5, -1)])
entries = []
for k, (a, b) in enumerate(((0, cut), (cut, total))):
    with h5py.File(f"{out}/shards/shard-{k:05d}.h5", "w") as f:
        # the shard layout of docs/FORMATS.md ("Shards", format_version 2)
        for name, value in dict(format_version=2, shard_index=k, shard_count=2, num_images=b - a,
                                first_row=a, total_images=total, image_size=S, bit_depth=8).items():
            f.attrs[name] = np.int64(value)
        f.create_dataset("images", data=images[a:b], chunks=(1, S, S))
        sel = full[a:b]
        ext = sel < 0
        pick = np.maximum(sel, 0)
        extra = np.maximum(np.arange(a, b) - n, 0)
        g2 = f.create_group("meta")
        put_strings(g2, "image_id", np.where(ext, extra_ids[extra], ids[pick]))
        put_strings(g2, "patient_id", np.where(ext, extra_patients[extra], patients[pick]))
        put_strings(g2, "view", np.where(ext, np.array(b"PA", dtype="S2"), views[pick]))
        g2.create_dataset("age", data=np.where(ext, np.nan, age[pick]).astype(np.float32))
        g2.create_dataset("sex", data=np.where(ext, -1, sex[pick]).astype(np.int8))
        g2.create_dataset("split", data=np.where(ext, 0, splits[pick]).astype(np.uint8))
        g2.create_dataset("source_row", data=np.arange(a, b, dtype=np.int64) + 2)
        g2.create_dataset("crc32c", data=np.array([crc32c(im.tobytes()) for im in images[a:b]],
                                                   dtype=np.uint32))
        entries.append({"file": f"shard-{k:05d}.h5", "first_row": a, "num_images": b - a,
                        "meta_sha256": meta_sha256(f)})
with open(f"{out}/shards/index.json", "w") as fh:
    json.dump({"format_version": 2, "num_images": total, "num_shards": 2, "shards": entries}, fh)

os.makedirs(f"{out}/pretrain", exist_ok=True)
with open(f"{out}/pretrain/metrics.jsonl", "w") as fh:
    for step in range(0, 500, 10):
        d = 9.0 * np.exp(-step / 150) + 2.0
        fh.write(json.dumps({"iteration": step, "lr": 1e-4, "total_loss": d + 0.5 * d - 0.2,
                             "dino_loss": d, "ibot_loss": 0.5 * d, "koleo_loss": -0.2,
                             "note": "a {string} with, commas", "nested": {"a": [1, 2]}}) + "\n")
    fh.write('{"iteration": 500, "total_loss": 3.1, "dino_lo')  # torn by a kill

known_age = ~np.isnan(age)
truth = dict(images=n, patients=110,
             splits={s: dict(images=int((splits == i).sum()),
                             patients=len(set(pidx[splits == i])))
                     for i, s in enumerate(("train", "val", "test"))},
             sex=dict(F=int((sex == 0).sum()), M=int((sex == 1).sum()), unknown=int((sex < 0).sum())),
             age_known=int(known_age.sum()), age_mean=float(age[known_age].astype(np.float64).mean()))
with open(f"{out}/truth.json", "w") as fh:
    json.dump(truth, fh)
