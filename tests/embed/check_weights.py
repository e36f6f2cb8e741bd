"""Checks for rdino-embed with released weights (tests/embed/test_embed_weights.sh,
test_embed_images.sh), against the shared transformers fixture hf_dinov2_tiny:
    check_weights.py hf FILE FIXTURE TOL     every row whose image_id names one of the fixture's
                                             PNGs (its file name, any folder) equals transformers'
                                             pooler_output (/cls) and patch_mean within TOL; the
                                             metadata is that of images without a CSV
    check_weights.py csv FILE FIXTURE TOL CSV  the same, with rows and metadata as the CSV lists
    check_weights.py broken FIXTURE DIR      writes damaged weights under DIR (one folder each,
                                             README-style list on stdout)
    check_weights.py pipeline A B            A (shards) and B (PNG files) hold the same images with
                                             bit-identical features"""
import csv
import json
import os
import shutil
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "model"))
import safetensors_np  # noqa: E402


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def compare_rows(f, fixture, tol):
    ids = f["meta/image_id"].asstr()[:]
    worst = 0.0
    for i, image_id in enumerate(ids):
        stem = os.path.basename(image_id)[:-4]
        want_cls = np.load(os.path.join(fixture, stem + "_pooler_output.npy"))[0]
        want_mean = np.load(os.path.join(fixture, stem + "_patch_mean.npy"))[0]
        for got, want, what in ((f["cls"][i], want_cls, "cls"),
                                (f["patch_mean"][i], want_mean, "patch_mean")):
            d = float(np.abs(got.astype(np.float64) - want).max())
            worst = max(worst, d)
            if not d <= tol:
                fail(f"{image_id}: /{what} is {d:.3g} from transformers' (tolerance {tol})")
    return ids, worst


def hf(path, fixture, tol):
    with h5py.File(path, "r") as f:
        ids, worst = compare_rows(f, fixture, tol)
        if list(ids) != sorted(ids) or len(ids) != 3:
            fail(f"rows {list(ids)}: the three PNGs in path order expected")
        if not (np.isnan(f["meta/age"][:]).all() and (f["meta/sex"][:] == -1).all()
                and (f["meta/split"][:] == 0).all()):
            fail("metadata of images without a CSV: age NaN, sex -1, split 0 expected")
        if "source_row" in f["meta"] or "shard_row" in f["meta"]:
            fail("no source_row / shard_row expected without a CSV or shards")
        if f.attrs["preprocess"] != "hf" or f.attrs["init"] != "weights":
            fail(f"attributes preprocess={f.attrs['preprocess']} init={f.attrs['init']}")
    print(f"ok: {len(ids)} rows within {worst:.2g} of transformers")


def from_csv(path, fixture, tol, csv_path):
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    with h5py.File(path, "r") as f:
        ids, worst = compare_rows(f, fixture, tol)
        usable = [r for r in rows if os.path.exists(os.path.join(os.path.dirname(csv_path),
                                                                 r["file"]))]
        if list(ids) != [r["file"] for r in usable]:
            fail(f"rows {list(ids)}, the CSV's usable rows in its order expected")
        line = {r["file"]: k + 2 for k, r in enumerate(rows)}  # header = line 1
        for i, r in enumerate(usable):
            got = (f["meta/patient_id"].asstr()[i], float(f["meta/age"][i]),
                   int(f["meta/sex"][i]), f["meta/view"].asstr()[i],
                   int(f["meta/source_row"][i]))
            want = (r["patient"], float(r["age"]), {"M": 1, "F": 0}[r["sex"]], r["view"],
                    line[r["file"]])
            if got != want:
                fail(f"row {i}: metadata {got}, the CSV says {want}")
    print(f"ok: {len(ids)} rows in the CSV's order within {worst:.2g} of transformers")


def broken(fixture, out):
    tensors, meta = safetensors_np.read(os.path.join(fixture, "model.safetensors"))

    def folder(name, changed, note):
        d = os.path.join(out, name)
        os.makedirs(d)
        shutil.copy(os.path.join(fixture, "config.json"), d)
        safetensors_np.write(os.path.join(d, "model.safetensors"), changed, meta)
        print(f"{name}: {note}")

    t = dict(tensors)
    t["encoder.layer.1.mlp.fc1.weight"] = np.zeros((100, 48), np.float32)
    folder("shape", t, "encoder.layer.1.mlp.fc1.weight is [100, 48], the model's [192, 48]")
    t = dict(tensors)
    q = t["encoder.layer.0.attention.attention.query.weight"].copy()
    q[3, 5] = np.nan
    t["encoder.layer.0.attention.attention.query.weight"] = q
    folder("nan", t, "a NaN in encoder.layer.0.attention.attention.query.weight")
    t = dict(tensors)
    t["encoder.layer.0.mlp.fc3.weight"] = np.zeros((4, 4), np.float32)
    folder("unknown", t, "encoder.layer.0.mlp.fc3.weight is no DINOv2 tensor")
    t = dict(tensors)
    del t["encoder.layer.1.norm2.bias"]
    folder("missing", t, "encoder.layer.1.norm2.bias is missing")
    d = os.path.join(out, "truncated")
    os.makedirs(d)
    shutil.copy(os.path.join(fixture, "config.json"), d)
    with open(os.path.join(fixture, "model.safetensors"), "rb") as src:
        blob = src.read()
    with open(os.path.join(d, "model.safetensors"), "wb") as dst:
        dst.write(blob[: len(blob) // 2])
    print("truncated: model.safetensors cut in half")
    d = os.path.join(out, "bare")
    os.makedirs(d)
    shutil.copy(os.path.join(fixture, "dinov2_original_names.safetensors"), d)
    print("bare: the original-name file alone: D = 48 gives no head count")
    d = os.path.join(out, "badproc")
    os.makedirs(d)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(os.path.join(fixture, name), d)
    with open(os.path.join(fixture, "preprocessor_config.json")) as fh:
        proc = json.load(fh)
    proc["do_pad"] = True
    with open(os.path.join(d, "preprocessor_config.json"), "w") as fh:
        json.dump(proc, fh)
    print("badproc: preprocessor_config.json with do_pad")


def pipeline(a_path, b_path):
    with h5py.File(a_path, "r") as a, h5py.File(b_path, "r") as b:
        ia, ib = a["meta/image_id"].asstr()[:], b["meta/image_id"].asstr()[:]
        if list(ia) != list(ib):
            fail(f"image ids differ: {len(ia)} vs {len(ib)} rows")
        for k in ("cls", "patch_mean", "meta/age", "meta/sex", "meta/patient_id", "meta/view"):
            x, y = a[k][:], b[k][:]
            if x.tobytes() != y.tobytes():
                bad = int(np.argmax([xi.tobytes() != yi.tobytes() for xi, yi in zip(x, y)]))
                fail(f"/{k} differs, first at row {bad} ({ia[bad]})")
    print(f"ok: {len(ia)} rows bit-identical")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "hf":
        hf(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif cmd == "csv":
        from_csv(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5])
    elif cmd == "broken":
        broken(sys.argv[2], sys.argv[3])
    elif cmd == "pipeline":
        pipeline(sys.argv[2], sys.argv[3])
    else:
        fail("unknown command " + cmd)
