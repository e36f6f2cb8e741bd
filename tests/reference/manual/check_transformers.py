"""Manual check (README.md here; not a test): transformers loads each snapshot folder written by
export_run and reproduces rdino's last_hidden_state.

    python3 check_transformers.py MAKE_FIXTURE_PY SNAPSHOT...

MAKE_FIXTURE_PY is ../shared/fixtures/hf_dinov2_tiny/make_fixture.py, whose install_stubs()
supplies the pure-Python safetensors / tokenizers stand-ins transformers needs here.
"""
import importlib.util
import sys

import numpy as np

spec = importlib.util.spec_from_file_location("make_fixture", sys.argv[1])
make_fixture = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_fixture)
make_fixture.install_stubs()

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModel  # noqa: E402

torch.set_num_threads(1)
print("transformers", transformers.__version__, "torch", torch.__version__)
for d in sys.argv[2:]:
    model, info = AutoModel.from_pretrained(d, output_loading_info=True)
    model.eval()
    print(d, type(model).__name__, info)
    for (H, W) in [(70, 70), (42, 98), (112, 112)]:
        x = np.fromfile(f"{d}/in_{H}x{W}.f32", dtype="<f4").reshape(2, 3, H, W)
        with torch.no_grad():
            y = model(pixel_values=torch.from_numpy(x)).last_hidden_state.numpy()
        want = np.fromfile(f"{d}/out_{H}x{W}.f32", dtype="<f4").reshape(y.shape)
        print(f"  {H}x{W}: {y.shape[1]} tokens, max |transformers - rdino| = "
              f"{np.abs(y - want).max():.3g} (max |y| {np.abs(y).max():.3g})")
