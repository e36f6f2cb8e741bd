"""Plays rdino-embed for tests: an embedding file (docs/FORMATS.md, "Embeddings") whose rows are
the images of an rdino-shard folder in shard order, with /meta copied from the shards and
features that are pure noise (an encoder that learned nothing).
    null_embeddings.py SHARDS_DIR OUT.h5 ENCODER [DIMS]"""
import json
import os
import sys

import h5py
import numpy as np

shards, out, encoder = sys.argv[1], sys.argv[2], sys.argv[3]
dims = int(sys.argv[4]) if len(sys.argv) > 4 else 32
with open(os.path.join(shards, "index.json")) as fh:
    files = [os.path.join(shards, s["file"]) for s in json.load(fh)["shards"]]
meta = {}
for path in files:
    with h5py.File(path, "r") as f:
        for name, ds in f["meta"].items():
            meta.setdefault(name, []).append(ds[:])
meta = {k: np.concatenate(v) for k, v in meta.items()}
n = len(meta["image_id"])
rng = np.random.default_rng(11)
os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
with h5py.File(out, "w") as f:
    f.attrs.update(format_version=1, encoder=encoder, checkpoint="none", model_config="noise",
                   resolution=0)
    f["cls"] = rng.normal(size=(n, dims)).astype(np.float32)
    f["patch_mean"] = rng.normal(size=(n, dims)).astype(np.float32)
    g = f.create_group("meta")
    for name, values in meta.items():
        if values.dtype.kind == "S":  # keep rdino's fixed-length UTF-8 strings
            dtype = h5py.string_dtype("utf-8", values.dtype.itemsize)
            g.create_dataset(name, data=values.astype(dtype), dtype=dtype)
        else:
            g.create_dataset(name, data=values)
