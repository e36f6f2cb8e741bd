"""safetensors files with numpy alone (the format: the README of github.com/huggingface/safetensors),
for tests that read rdino's exports and write damaged weight files:
    [8 bytes: n, little-endian u64] [n bytes of JSON header, space-padded] [tensor bytes]
Only what the tests need: F32 (and reading F16/BF16 is not needed)."""
import json
import struct

import numpy as np


def read(path):
    """-> ({name: float32 array}, metadata dict)"""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = blob[8 + n:]
    tensors = {}
    for name, t in header.items():
        if t["dtype"] != "F32":
            raise ValueError(f"{path}: {name} is {t['dtype']}, only F32 is read here")
        a, b = t["data_offsets"]
        tensors[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(t["shape"]).copy()
    return tensors, meta


def write(path, tensors, meta=None):
    """F32 tensors in sorted-name order, as the safetensors library lays them out."""
    header, offset, parts = {}, 0, []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        parts.append(a.tobytes())
    if meta is not None:
        header["__metadata__"] = meta
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(parts))
