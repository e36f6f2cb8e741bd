"""Checks an rdino-embed output file with h5py, as a user would read it (docs/FORMATS.md,
"Embeddings"). Prints one line and exits 1 on the first problem.

    check_embeddings.py layout EMB.h5 SHARDS_DIR SPLITS D RESOLUTION
        datasets, dtypes, shapes, attributes; /meta/* equal to the shards' rows whose split is in
        SPLITS (comma-separated names), in shard order; features finite
    check_embeddings.py same A.h5 B.h5 [--data-only]
        every dataset bit-identical and every attribute equal (--data-only: datasets only)
    check_embeddings.py cosine A.h5 B.h5 MIN
        the same rows (/meta/image_id), and the cosine of every row of /cls and /patch_mean of
        B to A's at least MIN; prints the smallest
"""
import hashlib
import json
import os
import sys

import h5py
import numpy as np

SPLITS = {"train": 0, "val": 1, "test": 2}
META = ["image_id", "patient_id", "view", "age", "sex", "split", "source_row"]


def fail(msg):
    print("FAIL " + msg)
    sys.exit(1)


def datasets(f):
    out = {}
    f.visititems(lambda name, obj: out.__setitem__(name, obj[()])
                 if isinstance(obj, h5py.Dataset) else None)
    return out


def layout(path, shards_dir, splits, dim, resolution):
    wanted = {SPLITS[s] for s in splits.split(",")}
    with open(os.path.join(shards_dir, "index.json"), "rb") as fh:
        raw = fh.read()
    index = json.loads(raw)
    rows = {k: [] for k in META}
    for entry in index["shards"]:
        with h5py.File(os.path.join(shards_dir, entry["file"]), "r") as s:
            keep = np.isin(s["meta/split"][:], list(wanted))
            for k in META:
                rows[k].append(s["meta/" + k][:][keep])
    rows = {k: np.concatenate(v) for k, v in rows.items()}
    n = len(rows["image_id"])
    with h5py.File(path, "r") as f:
        a = f.attrs
        for name, want in [("format_version", 1), ("embed_dim", dim), ("resolution", resolution),
                           ("num_images", n)]:
            if a[name] != want:
                fail(f"attribute {name} = {a[name]}, want {want}")
        for name in ["encoder", "checkpoint", "init", "model_config", "config", "shards",
                     "shards_index_sha256", "splits", "creator", "resample"]:
            if not isinstance(a[name], str):
                fail(f"attribute {name} is not a str: {a[name]!r}")
        if a["shards_index_sha256"] != hashlib.sha256(raw).hexdigest():
            fail("shards_index_sha256 is not the digest of index.json")
        if a["splits"] != splits:
            fail(f"splits attribute {a['splits']!r}, want {splits!r}")
        for name in ["cls", "patch_mean"]:
            x = f[name]
            if x.dtype != np.float32 or x.shape != (n, dim):
                fail(f"/{name}: {x.dtype} {x.shape}, want float32 ({n}, {dim})")
            if not np.all(np.isfinite(x[:])):
                fail(f"/{name} has non-finite values")
        if np.array_equal(f["cls"][:], f["patch_mean"][:]):
            fail("/cls equals /patch_mean")
        for k in META:
            got = f["meta/" + k][:]
            if got.dtype != rows[k].dtype and got.dtype.kind != "S":
                fail(f"/meta/{k}: dtype {got.dtype}, shards have {rows[k].dtype}")
            same = np.array_equal(got, rows[k], equal_nan=True) if got.dtype.kind == "f" \
                else np.array_equal(got, rows[k])
            if not same:
                fail(f"/meta/{k} differs from the shards' rows")
        if "meaning" not in f["meta/sex"].attrs:
            fail("/meta/sex has no 'meaning' attribute")
        ids = f["meta/image_id"].asstr()[:]
    print(f"ok: {n} rows, D={dim}, first id {ids[0] if n else None}")


def same(a_path, b_path, data_only=False):
    with h5py.File(a_path, "r") as a, h5py.File(b_path, "r") as b:
        da, db = datasets(a), datasets(b)
        if sorted(da) != sorted(db):
            fail(f"datasets differ: {sorted(da)} vs {sorted(db)}")
        for k in da:
            x, y = da[k], db[k]
            if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                fail(f"/{k} differs between {a_path} and {b_path}")
        if not data_only and dict(a.attrs) != dict(b.attrs):
            diff = [k for k in set(a.attrs) | set(b.attrs) if a.attrs.get(k) != b.attrs.get(k)]
            fail(f"attributes differ: {diff}")
    print(f"ok: {len(da)} datasets bit-identical")


def cosine(a_path, b_path, least):
    with h5py.File(a_path, "r") as a, h5py.File(b_path, "r") as b:
        ida, idb = a["meta/image_id"][()], b["meta/image_id"][()]
        if ida.shape != idb.shape or (ida != idb).any():
            fail(f"{a_path} and {b_path} hold other rows")
        worst = {}
        for k in ["cls", "patch_mean"]:
            x, y = a[k][()].astype(np.float64), b[k][()].astype(np.float64)
            c = (x * y).sum(1) / np.sqrt((x * x).sum(1) * (y * y).sum(1))
            i = int(np.argmin(c))
            worst[k] = c[i]
            if not c[i] >= least:
                fail(f"/{k} row {i} ({ida[i]!r}): cosine {c[i]:.7f} < {least}")
    print(f"ok: {len(ida)} rows, smallest cosine /cls {worst['cls']:.7f}, "
          f"/patch_mean {worst['patch_mean']:.7f}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "layout":
        layout(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
    elif cmd == "same":
        same(sys.argv[2], sys.argv[3], "--data-only" in sys.argv[4:])
    elif cmd == "cosine":
        cosine(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        fail("unknown command " + cmd)
