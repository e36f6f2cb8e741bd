"""Manual check (README.md here; not a test): mask_stats.py's MaskingGenerator and collate masks
equal facebookresearch/dinov2's own (dinov2/data/masking.py, collate.py) mask for mask, given the
same state of Python's `random`.

    python3 check_mask_stats_dinov2.py <dinov2 source>

The two dinov2 files are loaded by path (the dinov2.data package imports torchvision).
"""
import importlib.util
import os
import random
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import mask_stats as MS  # noqa: E402


def load(root, name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(root, "dinov2", "data",
                                                                     name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(root):
    Ref = load(root, "masking").MaskingGenerator
    collate = load(root, "collate").collate_data_and_cast
    n = 0
    for grid, img, p in ((14, 224, 16), (37, 518, 14), (16, 224, 14)):
        ref = Ref(input_size=(grid, grid), max_num_patches=0.5 * img // p * img // p)
        mine = MS.MaskingGenerator(grid, MS.max_num_patches(img, p), rng=random)
        assert ref.max_num_patches == mine.max_num_patches
        for s in range(3000):
            target = s % (grid * grid // 2 + 1)
            random.seed(s)
            a = ref(target)
            random.seed(s)
            assert np.array_equal(a, mine(target)), (grid, s, target)
            n += 1
        crops = {"global_crops": [torch.zeros(1)] * 2, "local_crops": [torch.zeros(1)]}
        for s in range(300):
            random.seed(s)
            r = collate([(crops, None)] * (MS.COLLATE_IMAGES // 2), MS.RATIOS, MS.MASK_PROBABILITY,
                        torch.float32, n_tokens=grid * grid, mask_generator=ref)
            random.seed(s)
            m = MS.collate_masks(mine, MS.COLLATE_IMAGES, grid * grid, random)
            assert np.array_equal(r["collated_masks"].numpy(),
                                  np.stack(m).reshape(MS.COLLATE_IMAGES, -1)), (grid, s)
            n += 1
    print(f"{n} masks / collates identical to dinov2's")


if __name__ == "__main__":
    main(sys.argv[1])
