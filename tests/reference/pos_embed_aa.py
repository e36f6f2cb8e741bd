"""Fixture for rdino's antialiased bicubic position-embedding resampling (rd_bicubic_aa_weights).

    cd <repo> && /usr/bin/python3 tests/reference/pos_embed_aa.py   # writes fixtures/pos_embed_aa.h5

The oracle is torch.nn.functional.interpolate(mode="bicubic", antialias=True,
align_corners=False) (Debian python3-torch 1.13, CPU, one thread), as facebookresearch/dinov2's
*_reg backbones (interpolate_antialias=True, interpolate_offset=0) and transformers'
Dinov2WithRegistersModel call it on the [1, D, M, M] grid of position embeddings.

Contents (float32):
  w/<name>    [g, M] 1-D resampling matrices: interpolate a one-hot basis [1, M, M, 1] (channel c
              = one-hot at row c) to height g, width 1 (unchanged), so output[0, c, i, 0] is
              exactly the weight torch gives source row c in output row i. Attributes M, g,
              scale_factor (0 = the size form, size=(g, 1); > 0 = scale_factor=(s, 1.0)).
  grid        [M * M, C] random N(0, 1) patch grid (row-major cells, C channels), M = 37, C = 5
  out/<name>  [g0 * g1, C] the whole grid resampled as torch does it (input [1, C, M, M]);
              attributes g0, g1, scale_factor (0 = size form, else both axes' factor).
Deterministic: fixed seed, one thread, no HDF5 timestamps, and torch's portable kernel
(ATEN_CPU_CAPABILITY=default): its AVX2 build contracts multiply-adds into FMAs, which moves the
weights by up to 6e-7 and would make the file depend on the CPU that generated it.
"""
import os

os.environ["ATEN_CPU_CAPABILITY"] = "default"  # before torch is imported

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
M_GRID, CHANNELS = 37, 5
# name: (M, g, scale_factor) for the 1-D weights; DINOv2's grid is 37 (518 / 14)
WEIGHTS = {
    "37_to_16": (37, 16, 0.0),    # 224 px
    "37_to_7": (37, 7, 0.0),      # 98 px
    "37_to_23": (37, 23, 0.0),
    "37_to_40": (37, 40, 0.0),    # upsampling (560 px): support stays 2
    "5_to_9": (5, 9, 0.0),
    "16_to_37": (16, 37, 0.0),
    "37_to_16_sf": (37, 16, 16.1 / 37),  # scale-factor form, DINOv2 offset 0.1
    "37_to_7_sf": (37, 7, 7.1 / 37),
}
# name: (g0, g1, scale_factor) for the 2-D resampling of the random grid
OUTPUTS = {
    "16x16": (16, 16, 0.0),
    "7x7": (7, 7, 0.0),
    "16x23": (16, 23, 0.0),
    "40x40": (40, 40, 0.0),
    "16x16_sf": (16, 16, 16.1 / 37),
}


def interpolate(x, g0, g1, scale_factor):
    if scale_factor > 0:
        return F.interpolate(x, scale_factor=scale_factor, mode="bicubic", align_corners=False,
                             antialias=True)
    return F.interpolate(x, size=(g0, g1), mode="bicubic", align_corners=False, antialias=True)


def weights_1d(M, g, scale_factor):
    basis = torch.eye(M, dtype=torch.float32).reshape(1, M, M, 1)
    if scale_factor > 0:
        y = F.interpolate(basis, scale_factor=(scale_factor, 1.0), mode="bicubic",
                          align_corners=False, antialias=True)
    else:
        y = F.interpolate(basis, size=(g, 1), mode="bicubic", align_corners=False, antialias=True)
    assert y.shape == (1, M, g, 1), y.shape
    return y[0, :, :, 0].T.contiguous().numpy()


def main():
    torch.set_num_threads(1)
    out = os.path.join(HERE, "fixtures", "pos_embed_aa.h5")
    gen = torch.Generator().manual_seed(2024)
    grid = torch.randn(M_GRID, M_GRID, CHANNELS, generator=gen, dtype=torch.float32)
    with h5py.File(out, "w", track_order=False) as f:
        f.attrs["torch_version"] = np.bytes_(torch.__version__)
        for name, (M, g, sf) in WEIGHTS.items():
            d = f.create_dataset(f"w/{name}", data=weights_1d(M, g, sf), track_times=False)
            d.attrs["M"], d.attrs["g"], d.attrs["scale_factor"] = M, g, sf
        f.create_dataset("grid", data=grid.reshape(M_GRID * M_GRID, CHANNELS).numpy(),
                         track_times=False)
        x = grid.permute(2, 0, 1).unsqueeze(0).contiguous()  # [1, C, M, M]
        for name, (g0, g1, sf) in OUTPUTS.items():
            y = interpolate(x, g0, g1, sf)
            assert y.shape == (1, CHANNELS, g0, g1), y.shape
            d = f.create_dataset(f"out/{name}", track_times=False,
                                 data=y[0].permute(1, 2, 0).reshape(g0 * g1, CHANNELS).numpy())
            d.attrs["g0"], d.attrs["g1"], d.attrs["scale_factor"] = g0, g1, sf
    print("wrote", out)


if __name__ == "__main__":
    main()
