"""PyTorch oracle for rdino-embed with a checkpoint (tests/embed/test_embed.sh).

    torch_oracle.py make CKPT.h5 EXPECTED.h5 SHARDS_DIR
        A tiny DINOv2 ViT (bench/peers/vit_torch.py; D=40, 2 blocks, 4 heads, p=4, native 16 px,
        1 register, parameters that make every branch matter, as in
        tests/model/vit_torch_fixture.py) with different teacher and student weights, written as
        an rdino checkpoint (teacher/backbone/<name>, student/backbone/<name>, attribute config
        with pretrain.augment.mean/std 0.45/0.3). EXPECTED.h5 holds, per model, the CLS and the
        mean patch token (registers excluded) of every shard image computed in float64:
        input (v / 255 - mean) / std, grey replicated to 3 channels, at the shards' size (24 px
        shards: the positional embedding is interpolated from the native 4x4 grid to 6x6).
    torch_oracle.py compare EMB.h5 EXPECTED.h5 MODEL TOL
        /cls and /patch_mean of rdino-embed against MODEL's expected rows, by image id;
        prints the largest difference, exits 1 above TOL.
"""
import json
import os
import sys

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "model"))
import vit_torch_fixture  # noqa: E402  (also puts bench/peers on the path)
import vit_torch  # noqa: E402

MEAN, STD = 0.45, 0.3
CONFIG = f"""student:
  arch: vit_custom
  embed_dim: 40
  depth: 2
  num_heads: 4
  patch_size: 4
  num_register_tokens: 1
crops:
  global_crops_size: 16
pretrain:
  augment:
    mean: {MEAN}
    std: {STD}
"""


def shard_images(shards_dir):
    with open(os.path.join(shards_dir, "index.json")) as fh:
        index = json.load(fh)
    ids, images = [], []
    for entry in index["shards"]:
        with h5py.File(os.path.join(shards_dir, entry["file"]), "r") as f:
            ids += list(f["meta/image_id"][:])
            images.append(f["images"][:])
    return ids, np.concatenate(images)


def make(ckpt_path, expected_path, shards_dir):
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(2024)
    ids, images = shard_images(shards_dir)
    x = (images.astype(np.float64) / 255.0 - MEAN) / STD
    x = torch.from_numpy(x).unsqueeze(1).expand(-1, 3, -1, -1)
    with h5py.File(ckpt_path, "w") as ck, h5py.File(expected_path, "w") as ex:
        ck.attrs["format_version"] = 1
        ck.attrs["creator"] = "tests/embed/torch_oracle.py"
        ck.attrs["config"] = CONFIG
        ex["image_id"] = np.array(ids)
        for model_name in ("teacher", "student"):
            model = vit_torch.ViT(40, 2, 4, 4, 16, registers=1)
            params = {n: vit_torch_fixture.random_param(n, tuple(p.shape), g)
                      for n, p in model.named_parameters()}
            model = model.double()
            with torch.no_grad():
                for n, p in model.named_parameters():
                    p.copy_(params[n])
                    ck[f"{model_name}/backbone/{n}"] = params[n].numpy().astype(np.float32)
                cls, _, patch = model(x)
            ex[f"{model_name}/cls"] = cls.numpy()
            ex[f"{model_name}/patch_mean"] = patch.mean(dim=1).numpy()
    print(f"ok: {len(ids)} images, grid {images.shape[1] // 4}x{images.shape[2] // 4}")


def compare(emb_path, expected_path, model, tol):
    with h5py.File(emb_path, "r") as f, h5py.File(expected_path, "r") as ex:
        row = {k: i for i, k in enumerate(ex["image_id"][:])}
        order = [row[k] for k in f["meta/image_id"][:]]
        worst = 0.0
        for name in ("cls", "patch_mean"):
            got = f[name][:].astype(np.float64)
            want = ex[f"{model}/{name}"][:][order]
            worst = max(worst, float(np.max(np.abs(got - want))))
    print(f"{model}: {len(order)} images, max |rdino - torch| = {worst:.3g} (tolerance {tol:g})")
    sys.exit(0 if worst <= tol else 1)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
    else:
        sys.exit("unknown command " + sys.argv[1])
