"""Independent checks of rdino-shard output with h5py (the layout in docs/FORMATS.md).
    check_shards.py layout SHARDS_DIR PREPROCESSED_DIR VAL_FRACTION TEST_FRACTION
        every documented dataset/attribute; images and metadata equal the manifest and PNGs;
        index.json counts; splits patient-disjoint with fractions within 5 binomial sd
    check_shards.py same DIR_A DIR_B     identical datasets and attributes, shard by shard
    check_shards.py flip FILE IMAGE      flips one byte inside image IMAGE of /images (in the file)
    check_shards.py poke FILE ROW        changes one pixel of image ROW through h5py (HDF5's own
                                         metadata stay valid: only rdino's CRC32C can tell)
    check_shards.py read FILE            reads every dataset (fails on an HDF5 checksum error)
    check_shards.py fletcher32 DIR 0|1   every dataset of every shard has Fletcher32 or none has
Prints nothing and exits 0 when all is well; otherwise prints what differs and exits 1."""
import csv
import hashlib
import json
import math
import os
import sys

import h5py
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
from verify_shards import crc32c, meta_sha256  # noqa: E402  (the documented recomputation)

META = ["image_id", "patient_id", "view", "age", "sex", "split", "source_row", "crc32c"]
TYPES = {"age": np.float32, "sex": np.int8, "split": np.uint8, "source_row": np.int64,
         "crc32c": np.uint32}
INT_ATTRS = ["format_version", "shard_index", "shard_count", "num_images", "first_row",
             "total_images", "image_size", "bit_depth", "split_seed"]
STR_ATTRS = ["config", "source_manifest", "source_manifest_sha256", "preprocess", "creator",
             "content_key"]
problems = []


def check(cond, what):
    if not cond:
        problems.append(what)


def shard_files(folder):
    with open(os.path.join(folder, "index.json")) as fh:
        index = json.load(fh)
    return index, [os.path.join(folder, s["file"]) for s in index["shards"]]


def layout(shards, pre, val_fraction, test_fraction):
    with open(os.path.join(pre, "manifest.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(os.path.join(pre, "manifest.csv"), "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    index, files = shard_files(shards)
    check(index["format_version"] == 3 and index["num_images"] == len(rows), "index header")
    findings = sorted(c for c in rows[0] if c.startswith("finding_")) if rows else []
    check(sorted(os.listdir(shards)) == sorted(["index.json"] + [os.path.basename(f) for f in files]),
          f"unexpected files in {shards}: {os.listdir(shards)}")
    row, split_of = 0, {}
    totals = [0, 0, 0]
    for k, path in enumerate(files):
        with h5py.File(path, "r") as f:
            n = f["images"].shape[0]
            entry = index["shards"][k]
            check(entry["num_images"] == n and entry["first_row"] == row, f"{path}: index entry")
            for name in INT_ATTRS:
                check(isinstance(f.attrs[name], np.int64), f"{path}: attribute {name} type")
            for name in STR_ATTRS:
                check(isinstance(f.attrs[name], str), f"{path}: attribute {name} not str")
            want = {"format_version": 3, "shard_index": k, "shard_count": len(files),
                    "num_images": n, "first_row": row, "total_images": len(rows)}
            for name, value in want.items():
                check(f.attrs[name] == value, f"{path}: {name} = {f.attrs[name]}, want {value}")
            check(f.attrs["source_manifest_sha256"] == digest, f"{path}: manifest digest")
            check(math.isclose(f.attrs["val_fraction"], val_fraction), f"{path}: val_fraction")
            check("shard:" in f.attrs["config"] and "preprocess.size" in f.attrs["preprocess"],
                  f"{path}: config/preprocess attributes")
            images = f["images"]
            size = f.attrs["image_size"]
            filtered = images.fletcher32 or images.compression is not None
            check(images.chunks == ((1, size, size) if filtered else None),
                  f"{path}: chunks {images.chunks} (filters: one image per chunk; else contiguous)")
            for name in ["images"] + ["meta/" + m for m in META]:
                check(f[name].shape[0] == n, f"{path}: {name} rows")
            check(entry["meta_sha256"] == meta_sha256(f), f"{path}: meta_sha256 of index.json")
            for name, dtype in TYPES.items():
                check(f["meta/" + name].dtype == dtype, f"{path}: meta/{name} is {f['meta/' + name].dtype}")
            check(images.dtype == (np.uint16 if f.attrs["bit_depth"] == 16 else np.uint8),
                  f"{path}: images dtype {images.dtype}")
            ids = f["meta/image_id"].asstr()[:]
            patients = f["meta/patient_id"].asstr()[:]
            views = f["meta/view"].asstr()[:]
            age, sex = f["meta/age"][:], f["meta/sex"][:]
            split, source = f["meta/split"][:], f["meta/source_row"][:]
            crcs = f["meta/crc32c"][:]
            check(sorted(m for m in f["meta"] if m.startswith("finding_")) == findings,
                  f"{path}: finding label columns {list(f['meta'])}, manifest {findings}")
            labels = {c: f["meta/" + c][:] for c in findings if c in f["meta"]}
            for c, v in labels.items():
                check(v.dtype == np.int8 and "meaning" in f["meta/" + c].attrs, f"{path}: meta/{c}")
            for i in range(n):
                m = rows[row + i]
                where = f"{path} row {i}"
                check(ids[i] == m["image_id"] and patients[i] == m["patient_id"]
                      and views[i] == m["view"], f"{where}: strings")
                check((math.isnan(age[i]) and m["age"] == "") or
                      (m["age"] != "" and age[i] == np.float32(float(m["age"]))), f"{where}: age")
                check(sex[i] == {"M": 1, "F": 0, "": -1}[m["sex"]], f"{where}: sex")
                check(source[i] == int(m["source_row"]), f"{where}: source_row")
                check(all(v[i] == {"1": 1, "0": 0, "": -1}[m[c]] for c, v in labels.items()),
                      f"{where}: finding labels")
                pixels = np.asarray(Image.open(os.path.join(pre, m["file"])))
                check(np.array_equal(images[i], pixels), f"{where}: pixels differ from {m['file']}")
                check(int(crcs[i]) == crc32c(images[i].astype(images.dtype.newbyteorder("<")).tobytes()),
                      f"{where}: /meta/crc32c is not the CRC32C of the image")
                check(split_of.setdefault(m["patient_id"], split[i]) == split[i],
                      f"patient {m['patient_id']} in two splits")
                totals[split[i]] += 1
            for s, key in enumerate(["train", "val", "test"]):
                check(entry[key] == int((split == s).sum()), f"{path}: index count {key}")
            row += n
    check(row == len(rows), f"shards hold {row} images, manifest {len(rows)}")
    check(totals == [index["splits"][k] for k in ["train", "val", "test"]], "index split totals")
    npat = len(split_of)
    counts = np.bincount(np.array(list(split_of.values()), dtype=np.int64), minlength=3)
    check(list(counts) == [index["patients"][k] for k in ["train", "val", "test"]], "index patients")
    for s, frac in enumerate([1 - val_fraction - test_fraction, val_fraction, test_fraction]):
        sd = math.sqrt(npat * frac * (1 - frac))
        check(abs(counts[s] - npat * frac) <= 5 * sd + 1e-9,
              f"split {s}: {counts[s]} of {npat} patients, expected {npat * frac:.1f} +- {5 * sd:.1f}")


def same(a, b):
    index_a, files_a = shard_files(a)
    index_b, files_b = shard_files(b)
    check(index_a == index_b, "index.json differs")
    for fa, fb in zip(files_a, files_b):
        with h5py.File(fa, "r") as x, h5py.File(fb, "r") as y:
            for name in ["images"] + ["meta/" + m for m in META]:
                check(x[name].dtype == y[name].dtype and np.array_equal(x[name][:], y[name][:],
                      equal_nan=x[name].dtype.kind == "f"), f"{fb}: {name} differs")
            check(sorted(x.attrs) == sorted(y.attrs), f"{fb}: attribute names differ")
            for name in x.attrs:
                check(str(x.attrs[name]) == str(y.attrs[name]), f"{fb}: attribute {name} differs")


def flip(path, image):
    with h5py.File(path, "r") as f:
        images = f["images"]
        if images.chunks is None:  # contiguous: image i at a fixed offset
            size = images[0].nbytes
            offset = images.id.get_offset() + image * size + size // 2
        else:
            info = images.id.get_chunk_info(image)
            offset = info.byte_offset + info.size // 2
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([byte ^ 0x01]))


def poke(path, row):
    with h5py.File(path, "r+") as f:
        image = f["images"][row]
        image[0, 0] ^= 1
        f["images"][row] = image


def fletcher32(folder, want):
    _, files = shard_files(folder)
    for path in files:
        with h5py.File(path, "r") as f:
            for name in ["images"] + ["meta/" + m for m in META]:
                check(f[name].fletcher32 == want, f"{path}: {name} fletcher32 is {f[name].fletcher32}")


def read_all(path):
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: obj[()] if isinstance(obj, h5py.Dataset) else None)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "layout":
        layout(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]))
    elif cmd == "same":
        same(sys.argv[2], sys.argv[3])
    elif cmd == "flip":
        flip(sys.argv[2], int(sys.argv[3]))
    elif cmd == "poke":
        poke(sys.argv[2], int(sys.argv[3]))
    elif cmd == "fletcher32":
        fletcher32(sys.argv[2], sys.argv[3] == "1")
    elif cmd == "read":
        read_all(sys.argv[2])
    for p in problems[:20]:
        print(p)
    sys.exit(1 if problems else 0)
