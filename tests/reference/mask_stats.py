"""Statistics of DINOv2's iBOT block masks, for tests/train/test_masks.c.

    /usr/bin/python3 tests/reference/mask_stats.py [--out DIR]   # fixtures/mask_stats.h5, ~1 min

An independent re-implementation of the algorithm of dinov2/data/masking.py (MaskingGenerator,
BEiT's block masking) and of the mask part of dinov2/data/collate.py (collate_data_and_cast),
drawing from Python's `random` as DINOv2 does, is run many times and the distributions of what a
mask looks like are stored as histograms of counts. rdino's generator uses another random stream,
so the C test compares distributions, not masks.

Settings (DINOv2's MaskingGenerator as dinov2/train/train.py builds it: min_num_patches 4,
min_aspect 0.3, max_aspect 1/0.3, max_num_patches = 0.5 * img // p * img // p evaluated left to
right):
  grid14/target_T  14 x 14 grid (224 px, p 16; max_num_patches 98), one mask of target T
  grid37/target_T  37 x 37 grid (518 px, p 14, RAD-DINO; max_num_patches 666)
  grid14/collate, grid37/collate  collate_data_and_cast over 16 global crops (B = 8), mask
                   probability 0.5, ratios (0.1, 0.5): every image of every group

Histograms per setting (counts over `samples` masks):
  count [N+1]         masked patches of a mask
  bbox_h, bbox_w [H+1] height / width of the masked region's bounding box (0: empty mask)
  components [CMAX+1] 4-connected components (CMAX or more in the last bin)
  rect [H+1, W+1]     (height, width) of masks that are exactly one filled rectangle (for small
                      targets mostly a single block: the block shapes, area x aspect after
                      rounding)
  cell [N]            how often each patch is masked (where the blocks land)
"""

import argparse
import math
import os
import random

import h5py
import numpy as np
import scipy.ndimage
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
CMAX = 12
SEED = 9009
MIN_PATCHES, MIN_ASPECT = 4, 0.3
COLLATE_IMAGES, MASK_PROBABILITY, RATIOS = 16, 0.5, (0.1, 0.5)
SETTINGS = [  # (grid, img, patch, [(target, samples)], collate groups)
    (14, 224, 16, [(4, 40000), (10, 40000), (25, 40000), (50, 40000), (98, 40000)], 2500),
    (37, 518, 14, [(68, 10000), (342, 10000), (684, 10000)], 600),
]


class MaskingGenerator:
    """dinov2/data/masking.py's algorithm (square grid)."""

    def __init__(self, grid, max_num_patches, min_num_patches=MIN_PATCHES, min_aspect=MIN_ASPECT,
                 rng=random):
        self.H = self.W = grid
        self.min_num_patches = min_num_patches
        self.max_num_patches = max_num_patches
        self.log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
        self.rng = rng

    def _mask(self, mask, max_mask_patches):
        """Up to 10 tries at one block; returns the patches it newly masked."""
        delta = 0
        for _ in range(10):
            target_area = self.rng.uniform(self.min_num_patches, max_mask_patches)
            aspect_ratio = math.exp(self.rng.uniform(*self.log_aspect))
            h = int(round(math.sqrt(target_area * aspect_ratio)))
            w = int(round(math.sqrt(target_area / aspect_ratio)))
            if w < self.W and h < self.H:
                top = self.rng.randint(0, self.H - h)
                left = self.rng.randint(0, self.W - w)
                block = mask[top:top + h, left:left + w]
                fresh = h * w - int(block.sum())
                if 0 < fresh <= max_mask_patches:
                    block[...] = True
                    delta += fresh
                if delta > 0:
                    break
        return delta

    def __call__(self, num_masking_patches=0):
        mask = np.zeros((self.H, self.W), dtype=bool)
        count = 0
        while count < num_masking_patches:
            budget = min(num_masking_patches - count, self.max_num_patches)
            delta = self._mask(mask, budget)
            if delta == 0:
                break
            count += delta
        return mask


def collate_masks(gen, n_images, N, rng):
    """collate_data_and_cast's masks: floor(n p) images with stratified ratios, then shuffled."""
    n_masked = int(n_images * MASK_PROBABILITY)
    probs = torch.linspace(*RATIOS, n_masked + 1)            # float32, as in DINOv2
    masks = [gen(int(N * rng.uniform(probs[i], probs[i + 1]))) for i in range(n_masked)]
    masks += [gen(0) for _ in range(n_masked, n_images)]
    rng.shuffle(masks)
    return masks


def max_num_patches(img, patch):
    return 0.5 * img // patch * img // patch


class Stats:
    def __init__(self, grid):
        H = W = grid
        self.samples = 0
        self.h = {"count": np.zeros(H * W + 1, np.int64), "bbox_h": np.zeros(H + 1, np.int64),
                  "bbox_w": np.zeros(W + 1, np.int64), "components": np.zeros(CMAX + 1, np.int64),
                  "rect": np.zeros((H + 1, W + 1), np.int64), "cell": np.zeros(H * W, np.int64)}

    def add(self, mask):
        self.samples += 1
        n = int(mask.sum())
        self.h["count"][n] += 1
        self.h["cell"] += mask.reshape(-1)
        if n == 0:
            self.h["bbox_h"][0] += 1
            self.h["bbox_w"][0] += 1
            self.h["components"][0] += 1
            return
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        bh, bw = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        self.h["bbox_h"][bh] += 1
        self.h["bbox_w"][bw] += 1
        _, comps = scipy.ndimage.label(mask)                 # 4-connectivity (cross)
        self.h["components"][min(comps, CMAX)] += 1
        if comps == 1 and n == bh * bw:
            self.h["rect"][bh, bw] += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=os.path.join(HERE, "fixtures"))
    out = ap.parse_args().out
    rng = random.Random(SEED)
    torch.set_num_threads(1)
    path = os.path.join(out, "mask_stats.h5")
    if os.path.exists(path):
        os.remove(path)
    with h5py.File(path, "w", track_order=False) as f:
        f.attrs["seed"] = SEED
        f.attrs["min_patches"] = MIN_PATCHES
        f.attrs["min_aspect"] = MIN_ASPECT
        f.attrs["components_cap"] = CMAX
        f.attrs["collate_images"] = COLLATE_IMAGES
        f.attrs["mask_probability"] = MASK_PROBABILITY
        f.attrs["ratio_min"], f.attrs["ratio_max"] = RATIOS
        for grid, img, patch, targets, groups in SETTINGS:
            mx = max_num_patches(img, patch)
            gen = MaskingGenerator(grid, mx, rng=rng)
            runs = [(f"grid{grid}/target_{t}", t, n) for t, n in targets]
            runs.append((f"grid{grid}/collate", None, groups))
            for name, target, n in runs:
                st = Stats(grid)
                for _ in range(n):
                    if target is None:
                        for m in collate_masks(gen, COLLATE_IMAGES, grid * grid, rng):
                            st.add(m)
                    else:
                        st.add(gen(target))
                g = f.create_group(name)
                g.attrs["grid"] = grid
                g.attrs["img_size"] = img
                g.attrs["patch_size"] = patch
                g.attrs["max_patches"] = mx
                g.attrs["target"] = -1 if target is None else target
                g.attrs["samples"] = st.samples
                for k, v in st.h.items():
                    g.create_dataset(k, data=v, track_times=False)
                c = st.h["count"]
                mean = (np.arange(c.size) * c).sum() / st.samples
                print(f"{name}: {st.samples} masks, mean count {mean:.2f}, "
                      f"exact {c[target] / st.samples if target else float('nan'):.3f}")
    print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
