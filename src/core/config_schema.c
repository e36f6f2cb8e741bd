/* The configuration schema: every key any rdino program accepts, with its default.
 * DINOv2 sections keep the names and defaults of facebookresearch/dinov2's
 * ssl_default_config.yaml; rdino's own sections follow. */
#include "rdino/config.h"

#include <math.h>
#include <stddef.h>

#define BOOL(name, def, help)                                                                      \
    { name, RD_CFG_BOOL, def, 0, 1, NULL, 0, help }
#define INT(name, def, lo, hi, help)                                                               \
    { name, RD_CFG_INT, def, lo, hi, NULL, 0, help }
#define FLT(name, def, lo, hi, help)                                                               \
    { name, RD_CFG_FLOAT, def, lo, hi, NULL, 0, help }
#define STR(name, def, choices, help)                                                              \
    { name, RD_CFG_STRING, def, 0, 0, choices, 0, help }
#define FLIST(name, def, len, lo, hi, help)                                                        \
    { name, RD_CFG_FLOAT_LIST, def, lo, hi, NULL, len, help }
#define ILIST(name, def, len, lo, hi, help)                                                        \
    { name, RD_CFG_INT_LIST, def, lo, hi, NULL, len, help }

/* Accepted for compatibility with DINOv2 files; rdino computes in fp32 without sharding. */
#define PRECISION(prefix, reduce)                                                                  \
    STR(prefix ".sharding_strategy", "SHARD_GRAD_OP", NULL, "ignored (no FSDP in rdino)"),         \
        STR(prefix ".mixed_precision.param_dtype", "fp16", NULL, "ignored (rdino is fp32)"),       \
        STR(prefix ".mixed_precision.reduce_dtype", reduce, NULL, "ignored (rdino is fp32)"),      \
        STR(prefix ".mixed_precision.buffer_dtype", "fp32", NULL, "ignored (rdino is fp32)")

/* A table reads best one key per line, so clang-format leaves it alone. */
/* clang-format off */
static const rd_cfg_key schema[] = {
    /* ---- DINOv2 ---- */
    STR("MODEL.WEIGHTS", "", NULL,
        "weights to start from (DINOv2 name; see student.pretrained_weights)"),
    BOOL("compute_precision.grad_scaler", "true", "ignored (rdino is fp32)"),
    PRECISION("compute_precision.teacher.backbone", "fp16"),
    PRECISION("compute_precision.teacher.dino_head", "fp16"),
    PRECISION("compute_precision.teacher.ibot_head", "fp16"),
    PRECISION("compute_precision.student.backbone", "fp16"),
    PRECISION("compute_precision.student.dino_head", "fp32"),
    PRECISION("compute_precision.student.ibot_head", "fp32"),

    FLT("dino.loss_weight", "1.0", 0, INFINITY, "weight of the DINO CLS loss"),
    INT("dino.head_n_prototypes", "65536", 1, 1 << 24, "prototypes K of the DINO head"),
    INT("dino.head_bottleneck_dim", "256", 1, 65536, "bottleneck width of the DINO head"),
    INT("dino.head_nlayers", "3", 1, 16, "MLP layers of the DINO head"),
    INT("dino.head_hidden_dim", "2048", 1, 1 << 20, "hidden width of the DINO head"),
    FLT("dino.koleo_loss_weight", "0.1", 0, INFINITY, "weight of the KoLeo regulariser"),
    STR("dino.head_weights", "", NULL, "DINO head to start from: a safetensors file of DINOv2's DINOHead (RAD-DINO's dino_head.safetensors); its shape must match dino.head_*"),

    FLT("ibot.loss_weight", "1.0", 0, INFINITY, "weight of the iBOT masked-patch loss"),
    FLT("ibot.mask_sample_probability", "0.5", 0, 1, "fraction of global crops that get a mask"),
    FLIST("ibot.mask_ratio_min_max", "[0.1, 0.5]", 2, 0, 1, "range of masked-patch ratios"),
    BOOL("ibot.separate_head", "false", "iBOT head separate from the DINO head"),
    INT("ibot.head_n_prototypes", "65536", 1, 1 << 24, "prototypes of a separate iBOT head"),
    INT("ibot.head_bottleneck_dim", "256", 1, 65536, "bottleneck of a separate iBOT head"),
    INT("ibot.head_nlayers", "3", 1, 16, "MLP layers of a separate iBOT head"),
    INT("ibot.head_hidden_dim", "2048", 1, 1 << 20, "hidden width of a separate iBOT head"),

    INT("train.batch_size_per_gpu", "64", 1, 1 << 20, "images per rank per step"),
    STR("train.dataset_path", "ImageNet:split=TRAIN", NULL,
        "ignored: rdino reads shards (shard.output_dir)"),
    STR("train.output_dir", ".", NULL, "ignored: rdino writes to pretrain.output_dir"),
    INT("train.saveckp_freq", "20", 0, 1 << 30, "checkpoint every N epochs (DINOv2 epochs)"),
    INT("train.seed", "0", 0, INT64_MAX, "seed of every random draw in pretraining"),
    INT("train.num_workers", "10", 0, 1024, "ignored (rdino prefetches with one thread)"),
    INT("train.OFFICIAL_EPOCH_LENGTH", "1250", 1, 1 << 30, "iterations per schedule epoch"),
    BOOL("train.cache_dataset", "true", "ignored"),
    STR("train.centering", "centering", "centering|sinkhorn_knopp", "teacher centring"),

    STR("student.arch", "vit_large", "vit_tiny|vit_small|vit_base|vit_large|vit_giant2|vit_custom",
        "ViT size"),
    INT("student.patch_size", "16", 1, 64, "patch size p"),
    FLT("student.drop_path_rate", "0.3", 0, 0.99, "stochastic depth rate"),
    FLT("student.layerscale", "1.0e-05", 0, INFINITY, "LayerScale init (0 disables LayerScale)"),
    BOOL("student.drop_path_uniform", "true", "same drop-path rate in every block"),
    STR("student.pretrained_weights", "", NULL, "backbone to start from (teacher = student): an rdino checkpoint (.h5), a .safetensors file, or a Hugging Face snapshot folder (microsoft/rad-dino, facebook/dinov2-base)"),
    STR("student.ffn_layer", "mlp", "mlp|swiglu|swiglufused", "feed-forward layer"),
    INT("student.block_chunks", "0", 0, 1024, "ignored (FSDP wrapping only)"),
    BOOL("student.qkv_bias", "true", "bias on the qkv projection"),
    BOOL("student.proj_bias", "true", "bias on the attention output projection"),
    BOOL("student.ffn_bias", "true", "bias on the feed-forward layers"),
    INT("student.num_register_tokens", "0", 0, 64, "register tokens"),
    BOOL("student.interpolate_antialias", "false", "antialiased pos-embed interpolation"),
    FLT("student.interpolate_offset", "0.1", 0, 1, "pos-embed interpolation offset"),
    INT("student.in_chans", "3", 1, 16, "input channels of the patch embedding (RAD-DINO: 3, grey replicated)"),
    INT("student.embed_dim", "384", 1, 1 << 16, "vit_custom only: embedding width D"),
    INT("student.depth", "12", 1, 64, "vit_custom only: number of blocks"),
    INT("student.num_heads", "6", 1, 1024, "vit_custom only: attention heads (D divisible by it)"),
    FLT("student.mlp_ratio", "4", 0.01, 64, "vit_custom only: FFN hidden width / D"),
    BOOL("student.activation_checkpointing", "false", "keep each block's input only and recompute the block in backward: the same gradients, student activations about 6x smaller, one more forward (rdino only; docs/PRETRAIN.md)"),
    INT("student.img_size", "0", 0, 16384, "native size of the position embedding, interpolated to every crop (0: crops.global_crops_size, DINOv2's rule; with released weights: theirs)"),

    FLT("teacher.momentum_teacher", "0.992", 0, 1, "EMA momentum at the start"),
    FLT("teacher.final_momentum_teacher", "1", 0, 1, "EMA momentum at the end"),
    FLT("teacher.warmup_teacher_temp", "0.04", 1e-6, INFINITY, "teacher temperature at step 0"),
    FLT("teacher.teacher_temp", "0.07", 1e-6, INFINITY, "teacher temperature after warmup"),
    FLT("teacher.warmup_teacher_temp_epochs", "30", 0, INFINITY, "teacher temperature warmup"),

    INT("optim.epochs", "100", 1, 1 << 30, "schedule length in epochs of OFFICIAL_EPOCH_LENGTH"),
    FLT("optim.weight_decay", "0.04", 0, INFINITY, "weight decay at the start"),
    FLT("optim.weight_decay_end", "0.4", 0, INFINITY, "weight decay at the end"),
    FLT("optim.base_lr", "0.004", 0, INFINITY, "learning rate for a global batch of 1024"),
    FLT("optim.lr", "0.", 0, INFINITY, "ignored: set from base_lr by the scaling rule"),
    FLT("optim.warmup_epochs", "10", 0, INFINITY, "linear lr warmup"),
    FLT("optim.min_lr", "1.0e-06", 0, INFINITY, "final learning rate"),
    FLT("optim.clip_grad", "3.0", 0, INFINITY, "gradient-norm clip per sub-module (0 = off)"),
    FLT("optim.freeze_last_layer_epochs", "1", 0, INFINITY,
        "epochs with the head's last layer frozen"),
    STR("optim.scaling_rule", "sqrt_wrt_1024", "sqrt_wrt_1024|linear_wrt_256|none",
        "lr scaling with the global batch"),
    FLT("optim.patch_embed_lr_mult", "0.2", 0, INFINITY, "lr multiplier of the patch embedding"),
    FLT("optim.layerwise_decay", "0.9", 0, 1, "layerwise lr decay"),
    FLT("optim.adamw_beta1", "0.9", 0, 1, "AdamW beta1"),
    FLT("optim.adamw_beta2", "0.999", 0, 1, "AdamW beta2"),

    FLIST("crops.global_crops_scale", "[0.32, 1.0]", 2, 0, 1, "area range of global crops"),
    INT("crops.local_crops_number", "8", 0, 64, "local crops per image"),
    FLIST("crops.local_crops_scale", "[0.05, 0.32]", 2, 0, 1, "area range of local crops"),
    INT("crops.global_crops_size", "224", 8, 4096, "global crop size in pixels"),
    INT("crops.local_crops_size", "96", 8, 4096, "local crop size in pixels"),

    INT("evaluation.eval_period_iterations", "12500", 0, 1 << 30, "teacher dump period"),

    /* ---- rdino: input data and where outputs go ---- */
    STR("data.format", "nih", "nih|chexpert|padchest|mimic|generic", "metadata CSV format (docs/FORMATS.md)"),
    STR("data.metadata_csv", "", NULL, "metadata CSV (NIH Data_Entry_2017.csv, CheXpert train.csv, PadChest CSV, MIMIC mimic-cxr-2.0.0-metadata.csv)"),
    STR("data.patients_csv", "", NULL, "MIMIC-CXR only: MIMIC-IV patients.csv (gender, anchor_age, anchor_year)"),
    STR("data.findings_csv", "", NULL, "MIMIC-CXR only: mimic-cxr-2.0.0-chexpert.csv, the finding labels of each study (empty: no findings)"),
    STR("data.findings.uncertain", "unknown", "unknown|negative|positive", "CheXpert/MIMIC/generic finding label -1 (uncertain): unknown (U-Ignore: left out of that label's probes), negative (U-Zeros) or positive (U-Ones)"),
    STR("data.findings.blank", "negative", "negative|unknown", "CheXpert/MIMIC/generic finding label left blank (not mentioned in the report): negative, as NIH codes an unlisted finding, or unknown"),
    STR("data.image_root", "", NULL, "folder the CSV image paths are relative to (MIMIC: the folder holding files/)"),
    STR("data.output_dir", "rdino-out", NULL, "every stage writes under this folder"),
    STR("data.columns.image", "Image Index", NULL, "generic CSV: image path column"),
    STR("data.columns.patient", "Patient ID", NULL, "generic CSV: patient id column (empty: none)"),
    STR("data.columns.age", "Patient Age", NULL, "generic CSV: age column, years or DICOM 060Y (empty: none)"),
    STR("data.columns.sex", "Patient Gender", NULL, "generic CSV: sex column, M/F/Male/Female (empty: none)"),
    STR("data.columns.view", "View Position", NULL, "generic CSV: view column (empty: none)"),
    STR("data.columns.findings", "", NULL, "generic CSV: finding label columns, comma-separated (cells 1, 0, -1 uncertain or blank; empty: none)"),

    /* ---- rdino-synth: the built-in phantom data set (docs/SYNTH.md) ---- */
    STR("synth.output_dir", "", NULL, "where images/ and metadata.csv go (empty = <data.output_dir>/synth)"),
    INT("synth.seed", "1", 0, INT64_MAX, "seed of every random draw of the phantoms"),
    INT("synth.n_patients", "200", 1, 1099511627776.0, "patients to generate"),
    ILIST("synth.images_per_patient", "[1, 6]", 2, 1, 1000, "images per patient, uniform on [min, max]"),
    FLIST("synth.followup_years", "[0.1, 2.0]", 2, 0, 50, "years between consecutive images, uniform"),
    FLIST("synth.age_range", "[18, 95]", 2, 0, 120, "age at the first image, uniform"),
    FLT("synth.male_fraction", "0.5", 0, 1, "probability that a patient is male"),
    FLT("synth.ap_fraction", "0.3", 0, 1, "probability that an image is AP rather than PA"),
    ILIST("synth.size_range", "[256, 1024]", 2, 32, 8192, "longer image side in pixels, uniform"),
    FLIST("synth.aspect_range", "[0.8, 1.25]", 2, 0.5, 2, "width / height, uniform (< 1 portrait)"),
    FLT("synth.strength", "1.0", 0, 1, "age and sex effects: 0 = none (null control), 1 = full"),
    FLT("synth.noise", "1.0", 0, 100, "multiplier of the quantum noise (0 = noise-free)"),
    FLT("synth.acquisition", "1.0", 0, 5, "multiplier of the image-to-image variation of patient position, rotation, magnification and display curve (0 = all alike)"),
    INT("synth.bit_depth", "8", 8, 16, "PNG bits per pixel: 8 or 16"),
    INT("synth.png_level", "1", 0, 9, "zlib level of the PNGs (6: about 15 % smaller, twice the time)"),
    INT("synth.chunk", "4", 1, 1 << 20, "images handed to a rank at a time"),

    /* ---- rdino-preprocess ---- */
    INT("preprocess.size", "518", 8, 16384, "shorter side after resizing (RAD-DINO: 518)"),
    STR("preprocess.crop", "center", "center|none", "center-crop to size x size, or keep aspect"),
    STR("preprocess.resample", "bspline", "bspline|cubic", "antialiased resampling kernel"),
    STR("preprocess.normalize", "minmax", "minmax|percentile", "intensity normalisation"),
    FLIST("preprocess.percentiles", "[0.5, 99.5]", 2, 0, 100, "percentile normalisation bounds"),
    STR("preprocess.views", "", NULL, "keep only these views, e.g. \"PA,AP\" (empty = all)"),
    INT("preprocess.bit_depth", "8", 8, 16, "stored bits per pixel: 8 or 16"),
    INT("preprocess.max_pixels", "400000000", 1, INT64_MAX, "refuse images with more pixels"),
    FLT("preprocess.max_aspect", "4", 1, 1000, "crop=none: refuse images whose longer side exceeds this many shorter sides"),
    INT("preprocess.png_level", "1", 0, 9, "zlib level of the output PNGs (1: fast; 6-9: files about a quarter smaller, 4x slower)"),
    INT("preprocess.chunk", "8", 1, 1 << 20, "images handed to a rank at a time (and journalled together)"),

    /* ---- rdino-shard ---- */
    STR("shard.input_dir", "", NULL, "preprocessed images + manifest.csv (default <data.output_dir>/preprocessed)"),
    STR("shard.output_dir", "", NULL, "where shards go (default <data.output_dir>/shards)"),
    INT("shard.num_shards", "0", 0, 1 << 20, "number of shards K (0: from images_per_shard)"),
    INT("shard.images_per_shard", "1024", 1, 1 << 30, "images per shard when num_shards is 0"),
    FLT("shard.val_fraction", "0.1", 0, 1, "fraction of patients in the validation split"),
    FLT("shard.test_fraction", "0.1", 0, 1, "fraction of patients in the test split"),
    INT("shard.split_seed", "0", 0, INT64_MAX, "seed of the patient-level split"),
    INT("shard.compression", "0", 0, 9, "deflate level of every dataset (0 = none)"),
    INT("shard.batch", "64", 1, 1 << 16, "images per read when a rerun checks an existing shard (memory: batch x S x S x 1-2 bytes); writing uses pieces of about 2 MiB"),
    BOOL("shard.force", "false", "rewrite every shard, even those a previous run finished (also --force)"),
    BOOL("shard.hdf5_checksum", "false", "also HDF5's Fletcher32 on every chunk (2-3x slower writes; every image carries a CRC32C anyway)"),
    STR("shard.verify", "", NULL, "verify this shards folder instead of writing shards: every image's CRC32C and every shard's metadata digest (also --verify DIR)"),

    /* ---- rdino-analyze: the metadata-correlation study (docs/ANALYSIS.md) ---- */
    STR("analyze.study", "", NULL, "study file (e.g. analysis/age_sex.yaml): its analyze.* keys are read over this configuration, beneath the command line (--study FILE)"),
    STR("analyze.embeddings", "", NULL, "embedding files (or folders of *.h5 files), comma-separated (empty = <data.output_dir>/embeddings)"),
    STR("analyze.main_encoder", "trained", NULL, "encoder listed first and plotted (if no file has it: the first file's)"),
    STR("analyze.features", "cls", "cls|patch_mean|both", "embedding to probe: final-norm CLS token, mean of the patch tokens, or both"),
    STR("analyze.shards_dir", "", NULL, "shards for the raw-pixel baseline (default shard.output_dir, else <data.output_dir>/shards)"),
    STR("analyze.splits", "train,val,test", NULL, "splits whose images enter the study, comma-separated (the study cross-validates within them)"),
    STR("analyze.targets", "auto", NULL, "what to predict, comma-separated: sex and /meta columns (int8 0/1 columns with -1 unknown, e.g. finding labels, by logistic regression), findings = every /meta/finding_* column (auto = sex and every numeric /meta column but split, source_row, shard_row and the finding labels: age, ...)"),
    INT("analyze.min_per_class", "5", 0, 1000000, "a 0/1 target (sex, view, a finding label) with fewer known images of either class, or an outer fold without both classes, is reported as not estimable (0: no check)"),
    STR("analyze.compare", "", NULL, "report folders (each with a report.json), comma-separated: put their results side by side (compare.md, compare.csv, forest and trajectory plots in analyze.output_dir) instead of running a study"),
    STR("analyze.adjust", "", NULL, "confounder-adjusted targets, comma-separated formulas 'target ~ covariate + ...' (covariates: sex, view, numeric /meta columns), e.g. 'age ~ sex + view, sex ~ age + view'; each is probed as the target's residual"),
    STR("analyze.output_dir", "", NULL, "report folder (default <data.output_dir>/report)"),
    STR("analyze.metrics_jsonl", "", NULL, "pretraining log for the loss plot (default <data.output_dir>/pretrain/metrics.jsonl)"),
    INT("analyze.seed", "0", 0, INT64_MAX, "seed of the folds, bootstrap and permutations"),
    INT("analyze.outer_folds", "5", 2, 64, "cross-validation folds (grouped by patient)"),
    INT("analyze.inner_folds", "4", 2, 64, "inner folds choosing the penalty in each outer training set"),
    FLIST("analyze.lambda_range", "[0.01, 1000000]", 2, 1e-12, 1e12, "smallest and largest penalty of the grid"),
    INT("analyze.lambdas_per_decade", "2", 1, 16, "penalties per factor 10 (at most 64 in all)"),
    INT("analyze.bootstrap", "1000", 0, 1000000, "patient-bootstrap replicates of every interval (0 = none)"),
    INT("analyze.permutations", "199", 0, 1000000, "permutation-test refits per encoder and target (0 = none)"),
    FLT("analyze.ci_level", "0.95", 0.5, 0.9999, "confidence level of the intervals"),
    BOOL("analyze.knn.enabled", "false", "also a k-NN probe of every representation (DINOv2's evaluation: cosine similarity, temperature-weighted vote), cross-validated by patient like the linear probes"),
    INT("analyze.knn.k", "20", 1, 100000, "neighbours of the k-NN probe (DINOv2: 20)"),
    FLT("analyze.knn.temperature", "0.07", 1e-6, 1e6, "temperature T of the k-NN vote weights exp(similarity / T) (DINOv2: 0.07)"),
    STR("analyze.plots_dir", "", NULL, "folder of the report's gnuplot scripts (empty = analysis/plots of the source tree the program was built in: <program folder>/../../analysis/plots)"),
    INT("analyze.top_dims", "10", 0, 1000, "embedding dimensions listed by |correlation| with each target"),
    BOOL("analyze.pixels.enabled", "true", "raw-pixel baseline from the shards"),
    INT("analyze.pixels.size", "16", 1, 512, "images area-averaged to size x size pixels"),
    INT("analyze.pixels.components", "64", 1, 65536, "PCA components of the downsampled pixels"),
    /* ---- rdino-pretrain: data and augmentation (docs/PRETRAIN.md, "Data and augmentation") ---- */
    STR("pretrain.data.shards_dir", "", NULL, "shards to train on (empty: shard.output_dir, else <data.output_dir>/shards)"),
    BOOL("pretrain.data.prefetch", "true", "read and augment the next batch in a background thread while the step computes"),
    INT("pretrain.data.max_open_shards", "64", 1, 1 << 20, "shard files a rank keeps open (at least the per-rank batch is used)"),
    STR("pretrain.precision", "fp32", "fp32|bf16", "arithmetic of the student's block linears: fp32, or bf16 products with fp32 sums on CPUs with AVX512-BF16 (bf16 copies of the fp32 master weights re-packed once per step; the teacher, optimiser, LayerNorm, attention, softmax, losses, Sinkhorn-Knopp, centring, EMA, gradient all-reduce and checkpoints stay fp32; fp32 with one warning on other CPUs; RDINO_BF16 overrides the path: docs/BF16.md)"),
    STR("pretrain.on_corrupt", "error", "error|skip", "an image failing its CRC32C: stop naming it, or skip it (its place in the batch taken by the next intact image of the pass; counted in metrics.jsonl)"),
    INT("pretrain.group_size", "8", 0, 1 << 20, "images per iBOT-mask / drop-path group; must divide the per-rank batch (0 = the per-rank batch: DINOv2's per-GPU draws, rank-count dependent)"),
    FLT("pretrain.augment.flip_p", "0.5", 0, 1, "horizontal flip probability"),
    FLT("pretrain.augment.jitter_p", "0.8", 0, 1, "probability of brightness/contrast jitter"),
    FLT("pretrain.augment.brightness", "0.4", 0, 10, "brightness factor ~ U(max(0, 1 - x), 1 + x)"),
    FLT("pretrain.augment.contrast", "0.4", 0, 10, "contrast factor ~ U(max(0, 1 - x), 1 + x)"),
    FLT("pretrain.augment.blur_p_global1", "0.0", 0, 1, "Gaussian blur probability, global crop 1 (DINOv2's effective value; its config says 1.0)"),
    FLT("pretrain.augment.blur_p_global2", "0.9", 0, 1, "Gaussian blur probability, global crop 2 (effective; config says 0.1)"),
    FLT("pretrain.augment.blur_p_local", "0.5", 0, 1, "Gaussian blur probability, local crops"),
    FLIST("pretrain.augment.blur_sigma", "[0.1, 2.0]", 2, 0.001, 100, "blur sigma ~ U(lo, hi) in pixels (9-tap kernel)"),
    FLT("pretrain.augment.solarize_p", "0.2", 0, 1, "solarisation probability, global crop 2 (threshold 128/255)"),
    FLT("pretrain.augment.mean", "0.5307", -10, 10, "normalisation mean (RAD-DINO: 0.5307)"),
    FLT("pretrain.augment.std", "0.2583", 1e-6, 100, "normalisation std (RAD-DINO: 0.2583)"),

    /* ---- rdino-pretrain: the training loop (docs/PRETRAIN.md) ---- */
    STR("pretrain.output_dir", "", NULL, "metrics.jsonl, summary.json and checkpoints/ go here (default <data.output_dir>/pretrain)"),
    BOOL("pretrain.resume", "true", "continue from the newest readable checkpoint (false: start at step 0, existing checkpoints moved aside; also --resume / --no-resume)"),
    INT("pretrain.global_batch", "0", 0, 1 << 30, "images per step over all ranks, fixed whatever the rank count (0 = ranks x train.batch_size_per_gpu); lr scaling uses it"),
    INT("pretrain.max_steps", "0", 0, INT64_MAX, "stop after this many iterations (0 = optim.epochs x OFFICIAL_EPOCH_LENGTH + 1, DINOv2's count); the schedules keep their epoch-based length"),
    INT("pretrain.checkpoint_every", "0", 0, INT64_MAX, "checkpoint every N iterations (0 = 3 epochs, DINOv2's period); also at the end and on a stop signal"),
    FLT("pretrain.checkpoint_minutes", "30", 0, 1e9, "also checkpoint when this much wall time has passed since the last one (0 = off)"),
    INT("pretrain.keep_checkpoints", "3", 1, 1 << 20, "newest checkpoints kept (DINOv2: 3)"),
    INT("pretrain.keep_every", "0", 0, INT64_MAX, "also keep for good every checkpoint whose step is a multiple of N, for post-hoc studies of the trajectory (jobs/posthoc.sbatch); they do not count towards keep_checkpoints (0 = off)"),
    INT("pretrain.metrics_every", "1", 1, 1 << 30, "a metrics.jsonl line every N iterations"),
    INT("pretrain.check_every", "100", 0, 1 << 30, "compare a checksum of the state across ranks every N iterations (0 = only at checkpoints)"),
    FLT("pretrain.bucket_mb", "16", 0, 1e6, "gradient all-reduce bucket size in MiB, started during backward (0 = one all-reduce after backward)"),
    FLT("pretrain.max_memory_gb", "0", 0, 1e9, "memory a rank may plan for (GiB); a run whose trainer memory plan exceeds it stops before allocating (0 = 90% of the node's memory, or of its cgroup limit, over the ranks on the node)"),
    BOOL("pretrain.plan_memory", "false", "print the trainer's memory plan for this configuration and exit without allocating it (also --plan-memory)"),
    INT("pretrain.threads", "0", 0, 4096, "OpenMP threads per rank (0 = OMP_NUM_THREADS, else the CPUs the rank is bound to)"),
    STR("pretrain.ibot_center", "global_mean", "global_mean|mean_of_rank_means", "iBOT centre over ranks: the global mean (rank-count invariant) or DINOv2's mean of per-rank means"),
    STR("pretrain.export_dir", "", NULL, "when every step is done, write the teacher as a Hugging Face snapshot folder here: config.json, model.safetensors, preprocessor_config.json (also --export DIR)"),
    BOOL("pretrain.export_original_names", "false", "the export also holds backbone_compatible.safetensors (DINOv2's names)"),
    BOOL("pretrain.export_head", "false", "the export also holds dino_head.safetensors (the teacher's DINO head)"),

    /* ---- rdino-embed (input normalisation: pretrain.augment.mean/std, as in training) ---- */
    STR("embed.init", "checkpoint", "checkpoint|random", "encoder weights: a checkpoint's backbone, or DINOv2's random initialisation (the study's baseline; also --init)"),
    STR("embed.checkpoint", "", NULL, "checkpoint to embed with (init: checkpoint; empty: the newest in <pretrain.output_dir>/checkpoints)"),
    STR("embed.model", "teacher", "teacher|student", "which backbone of the checkpoint (DINOv2 evaluates the teacher)"),
    INT("embed.seed", "0", 0, INT64_MAX, "seed of the random initialisation (init: random)"),
    STR("embed.shards_dir", "", NULL, "shards to embed (default shard.output_dir, else <data.output_dir>/shards)"),
    STR("embed.splits", "train,val,test", NULL, "splits to embed, comma-separated (train, val, test or all)"),
    INT("embed.resolution", "0", 0, 16384, "model input side in pixels (0: the shards' image size)"),
    STR("embed.resample", "cubic", "cubic|bspline", "antialiased kernel resizing the shard images to embed.resolution"),
    INT("embed.batch", "16", 1, 1 << 16, "images per forward (memory grows with batch x resolution^2)"),
    STR("embed.name", "", NULL, "encoder name stored in the file (default: trained, or random-init)"),
    STR("embed.output", "", NULL, "output file (default <data.output_dir>/embeddings/<name>.h5)"),
    STR("embed.weights", "", NULL, "released weights to embed with instead of a checkpoint: a Hugging Face snapshot folder (config.json, model.safetensors, preprocessor_config.json) or a .safetensors file (also --weights)"),
    STR("embed.images", "", NULL, "embed PNG files instead of shards: a folder (every *.png below it, in path order) or a metadata CSV read as data.metadata_csv is (images under data.image_root, else the CSV's folder) (also --images)"),
    STR("embed.preprocess", "auto", "auto|hf|rdino", "PNG input: transformers' BitImageProcessor from the weights' preprocessor_config.json (hf; 16-bit images clipped at 255 as transformers does), or rdino's preprocess.* pipeline and pretrain.augment.mean/std (rdino; keeps 16 bits); auto: hf when the weights folder has preprocessor_config.json. Shards are always rdino"),
    STR("embed.interpolation", "auto", "auto|hf|legacy|dinov2_reg", "position-embedding interpolation at grids other than the native one (auto: what the weights record, or the checkpoint's student.interpolate_*)"),
    STR("embed.precision", "fp32", "fp32|bf16", "arithmetic of the ViT's block linears: fp32, or bf16 products with fp32 sums on CPUs with AVX512-BF16 (weights rounded and packed once at load; LayerNorm, attention, softmax, GELU and residuals stay fp32; fp32 with one warning on other CPUs; the environment variable RDINO_BF16=force|emulate|off overrides the path: docs/BF16.md)"),
    STR("embed.on_corrupt", "error", "error|skip", "an image that cannot be read (a PNG of embed.images) or fails its CRC32C (a shard): stop with an error naming it, or leave it out of the embeddings (counted in the log and the summary)"),
};
/* clang-format on */

const rd_cfg_key *rd_config_schema(int *nkeys) {
    *nkeys = (int)(sizeof schema / sizeof schema[0]);
    return schema;
}
