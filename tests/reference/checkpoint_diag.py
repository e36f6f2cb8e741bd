"""Diagnostics of a checkpoint's teacher on shard images: CLS diversity, head z diversity,
logit spread across images and across prototypes, target entropy: is a run in DINO's uniform
collapse (every image gets the same near-uniform target)? A development tool, not a test.
    /usr/bin/python3 tests/reference/checkpoint_diag.py CHECKPOINT.h5 SHARDS_DIR [NUM_HEADS]
(the ViT is rebuilt from the checkpoint's shapes with tests/reference/dinov2_oracle.py; it reads
the first 128 images of the first shard, normalised with RAD-DINO's mean and std)."""
import sys, math, json, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h5py, numpy as np, torch
import dinov2_oracle as O
ck, shards = sys.argv[1], sys.argv[2]
f = h5py.File(ck, "r")
def sd(prefix):
    g = f[prefix]
    return {n: torch.from_numpy(g[n][()]) for n in g}
bb, head = sd("teacher/backbone"), sd("teacher/dino_head")
D = bb["cls_token"].shape[-1]; depth = len({k.split('.')[1] for k in bb if k.startswith('blocks.')})
p = bb["patch_embed.proj.weight"].shape[-1]; N0 = bb["pos_embed"].shape[1] - 1
G = int(math.sqrt(N0)) * p
K, bn = head["last_layer.weight_v"].shape; hid = head["mlp.0.weight"].shape[0]
heads = int(sys.argv[3]) if len(sys.argv) > 3 else 4
cfg = O.StepConfig(embed_dim=D, depth=depth, num_heads=heads, patch_size=p, in_chans=3, global_size=G, K=K, bottleneck=bn, hidden=hid)
m = O.build_model(cfg)
m["backbone"].load_state_dict(bb); m["dino_head"].load_state_dict(head)
idx = json.load(open(os.path.join(shards, "index.json")))
with h5py.File(os.path.join(shards, idx["shards"][0]["file"])) as s:
    im = s["images"][:128].astype(np.float32) / 255.0
x = torch.from_numpy((im - 0.5307) / 0.2583)[:, None].expand(-1, 3, -1, -1)
with torch.no_grad():
    out = m["backbone"](x)
    cls = out["cls"]; z, logits = m["dino_head"](cls)
def pairwise_cos(a):
    a = a / a.norm(dim=1, keepdim=True); c = a @ a.t(); n = len(a)
    return ((c.sum() - n) / (n * n - n)).item()
print("CLS mean pairwise cosine %.4f; CLS centred: std across images / norm %.4f" % (pairwise_cos(cls), (cls - cls.mean(0)).norm(dim=1).mean().item() / cls.norm(dim=1).mean().item()))
print("z mean pairwise cosine %.4f" % pairwise_cos(z))
print("logits: std across images (mean over prototypes) %.4g, std across prototypes (mean over images) %.4g" % (logits.std(0).mean().item(), logits.std(1).mean().item()))
for T in (0.04, 0.07):
    q = torch.softmax((logits - logits.mean(0)) / T, dim=1)
    H = -(q * q.clamp_min(1e-30).log()).sum(1).mean().item()
    print("centred target entropy at T=%.2f: %.3f (ln K = %.3f)" % (T, H, math.log(K)))
