"""PyTorch peer of bench_step: the same DINOv2 step with the reference oracle
(tests/reference/dinov2_oracle.py) in fp32 on the same threads.

    /usr/bin/python3 bench/bench_step_peer.py ORACLE_DIR B STEPS K N_LOCAL THREADS [KEY=VALUE]...
The model is bench_step's ViT-S/16 at 224 (+ 96 px local crops) unless KEY=VALUE pairs set
StepConfig fields (integers), e.g. ViT-B/14 at 518 as configs/nih.yaml: embed_dim=768
num_heads=12 patch_size=14 global_size=518 local_size=98. Prints seconds per step, seconds per
image and images/s as "RESULT" lines.
"""
import resource
import sys
import time

import torch


def main():
    oracle_dir, B, steps, K, n_local, threads = sys.argv[1], *map(int, sys.argv[2:7])
    sys.path.insert(0, oracle_dir)
    import dinov2_oracle as O
    from make_fixtures import random_state_dict

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = O.StepConfig(embed_dim=384, depth=12, num_heads=6, patch_size=16, in_chans=3,
                       global_size=224, local_size=96, n_local=n_local, batch_size=B, K=K,
                       bottleneck=256, hidden=2048, separate_ibot_head=False,
                       centering="sinkhorn_knopp", koleo_weight=0.1, drop_path_rate=0.0,
                       teacher_temp=0.07, lr=1e-4, last_layer_lr=1e-4, wd=0.04,
                       momentum=0.996, layerwise_decay=0.9, clip_grad=3.0)
    for pair in sys.argv[7:]:
        key, value = pair.split("=", 1)
        if not hasattr(cfg, key):
            sys.exit(f"bench_step_peer: StepConfig has no field {key}")
        setattr(cfg, key, int(value))
    student, teacher = O.build_model(cfg), O.build_model(cfg)
    sd = random_state_dict(student, torch.Generator().manual_seed(0))
    O.load_state(student, sd)
    O.load_state(teacher, sd)
    for p in teacher.parameters():
        p.requires_grad_(False)
    opt = O.build_adamw(student, cfg)
    N = cfg.n_global_patches
    G, L = cfg.global_size, cfg.local_size
    gc = torch.randn(2 * B, 3, G, G)
    lc = torch.randn(n_local * B, 3, L, L)
    # B of the 2B global crops masked with stratified ratios in [0.1, 0.5] (counts as DINOv2's
    # collate_data_and_cast).
    masks = torch.zeros(2 * B, N, dtype=torch.bool)
    for i, img in enumerate(torch.randperm(2 * B)[:B].tolist()):
        count = int(N * (0.1 + 0.4 * (i + torch.rand(1).item()) / B))
        masks[img, torch.randperm(N)[:count]] = True
    idx = masks.flatten().nonzero().squeeze(1)
    weight = (1.0 / masks.sum(-1).clamp(min=1.0)).unsqueeze(-1).expand_as(masks)[masks]
    inp = O.StepInputs(gc, lc, masks, idx, weight)

    total = 0.0
    for s in range(steps + 1):          # step 0 warms up
        t0 = time.perf_counter()
        out = {}
        t_dino, t_ibot = O.teacher_targets(cfg, teacher, inp, out)
        loss = O.student_losses(cfg, student, inp, t_dino, t_ibot, out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for m in student.values():
            O.clip_grads_(m, cfg.clip_grad)
        opt.step()
        O.ema_update_(teacher, student, cfg.momentum)
        dt = time.perf_counter() - t0
        print(f"peer step {s}: {dt:.2f} s, loss {loss.item():.4f}, M = {idx.numel()}", flush=True)
        if s > 0:
            total += dt
    print(f"RESULT peer step PyTorch {torch.__version__} fp32: {total / steps:.3f} s/step")
    print(f"RESULT peer s/img: {total / steps / B:.2f} s/img")
    print(f"RESULT peer images/s: {B * steps / total:.3f} img/s")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
