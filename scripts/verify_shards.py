#!/usr/bin/python3
"""Checks an rdino shards folder with h5py alone, as `rdino-shard --verify DIR` does
(docs/FORMATS.md, "Shards"): every image against its /meta/crc32c, every shard's /meta datasets
(finding label columns included) against index.json's meta_sha256.

    verify_shards.py DIR        prints each bad image and shard; exit status 1 if any

The CRC32C is written out in plain Python (no numpy needed for it), so it is slow (about 5 MB/s):
meant for spot checks and for tests. crc32c(data) is the standard CRC32C (Castagnoli, reflected
polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF): crc32c(b"123456789") ==
0xE3069283. An image's CRC covers its bytes as stored in /images: S*S bytes for uint8, S*S
little-endian uint16 for 16-bit shards (numpy: `f["images"][i].tobytes()` on a little-endian
host)."""
import hashlib
import json
import os
import sys


def _table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        table.append(c)
    return table


_TABLE = _table()


def crc32c(data, crc=0):
    """CRC32C of data (bytes); crc continues an earlier value: crc32c(b, crc32c(a)) == crc32c(a + b)."""
    c = crc ^ 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        c = table[(c ^ byte) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


# The /meta datasets in the order their bytes enter meta_sha256, then the finding label columns
# (format 3: /meta/finding_*, int8) in name order.
META_ORDER = ["image_id", "patient_id", "view", "age", "sex", "split", "source_row", "crc32c"]


def meta_sha256(shard):
    """SHA-256 (hex) of the /meta datasets of an open h5py shard, as stored: the bytes of each
    dataset read whole (fixed-width strings NUL-padded, numbers little-endian), concatenated in
    META_ORDER."""
    h = hashlib.sha256()
    findings = sorted(name for name in shard["meta"] if name.startswith("finding_"))
    for name in META_ORDER + findings:
        h.update(shard["meta/" + name][()].astype(shard["meta/" + name].dtype.newbyteorder("<")).tobytes())
    return h.hexdigest()


def verify(folder):
    """Returns a list of problems (empty when the folder is intact)."""
    import h5py  # only the folder check needs h5py

    problems = []
    with open(os.path.join(folder, "index.json")) as fh:
        index = json.load(fh)
    for entry in index["shards"]:
        path = os.path.join(folder, entry["file"])
        try:
            with h5py.File(path, "r") as f:
                images, crcs = f["images"], f["meta/crc32c"][()]
                ids = f["meta/image_id"][()]
                for row in range(images.shape[0]):
                    got = crc32c(images[row].astype(images.dtype.newbyteorder("<")).tobytes())
                    if got != int(crcs[row]):
                        problems.append(f"{path}: row {row}, image id '{ids[row].decode()}': "
                                        f"CRC32C 0x{got:08x}, stored 0x{int(crcs[row]):08x}")
                digest = meta_sha256(f)
                if digest != entry["meta_sha256"]:
                    problems.append(f"{path}: /meta SHA-256 {digest}, index.json says "
                                    f"{entry['meta_sha256']}")
        except OSError as e:
            problems.append(f"{path}: {e}")
    return problems


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    found = verify(sys.argv[1])
    for p in found:
        print(p)
    sys.exit(1 if found else 0)
