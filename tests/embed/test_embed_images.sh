#!/usr/bin/env bash
# rdino-embed --images: PNG files straight to one embeddings file.
#   - a metadata CSV (generic format) instead of a folder: rows in the CSV's order with its
#     patient, age, sex, view and source row; a row naming no file is left out and logged; the
#     features still match transformers (the shared fixture hf_dinov2_tiny, 1e-5 as in
#     test_embed_weights.sh);
#   - an unreadable PNG stops the run with exit status 1 naming it and leaves no file;
#     embed.on_corrupt: skip leaves it out (attribute skipped_images = 1) and the other rows are
#     bit-identical to a run without it, on 1 and 2 ranks;
#   - rdino preprocessing of PNG files is the pipeline's: rdino-preprocess + rdino-shard +
#     rdino-embed on the shared cxr_small sample and rdino-embed --images on its metadata CSV
#     (NIH format, images found by name under data.image_root) give the same rows with
#     bit-identical features.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
suite=embed/images
bin=$RDINO_BIN/rdino-embed
py=/usr/bin/python3
check=tests/embed/check_weights.py
shared=$(rd_shared_dir)
F=$shared/fixtures/hf_dinov2_tiny

for b in "$bin" "$RDINO_BIN/rdino-preprocess" "$RDINO_BIN/rdino-shard"; do
    if [ ! -x "$b" ]; then
        rd_skip "$suite" "$b not built"
        exit 0
    fi
done
if [ -z "$shared" ] || [ ! -f "$F/model.safetensors" ]; then
    rd_skip "$suite" "../shared/fixtures/hf_dinov2_tiny is absent (set RDINO_SHARED)"
    exit 0
fi
if ! $py -c 'import h5py, numpy' 2>/dev/null; then
    rd_skip "$suite" "/usr/bin/python3 lacks h5py or numpy (scripts/install-deps.sh)"
    exit 0
fi
rd_tmpdir
T=$RD_TMP
export OMP_NUM_THREADS=1
mkdir -p "$T/png"
for f in png_grey16_700x900 png_grey8_1024x1024 png_grey8_600x500; do
    ln -s "$F/$f.png" "$T/png/$f.png"
done

run() { # NP LOG ARGS...
    local np=$1 log=$2
    shift 2
    rd_mpirun "$np" "$bin" data.output_dir="$T" embed.batch=2 --weights "$F" "$@" >"$log" 2>&1
}

# A generic metadata CSV listing the PNGs out of path order, and one file that is not there.
# The PNGs are copies: like rdino-preprocess, a CSV may not lead out of data.image_root (here
# the CSV's folder) through a symbolic link.
mkdir -p "$T/csvdir/png"
cp -L "$T"/png/*.png "$T/csvdir/png/"
cat >"$T/csvdir/list.csv" <<'CSV'
file,patient,age,sex,view
png/png_grey8_600x500.png,p7,61,F,PA
png/png_grey16_700x900.png,p3,45.5,M,AP
png/missing.png,p9,30,M,PA
png/png_grey8_1024x1024.png,p3,47,M,PA
CSV
if run 2 "$T/csv.log" --images "$T/csvdir/list.csv" --output "$T/csv.h5" data.format=generic \
    data.columns.image=file data.columns.patient=patient data.columns.age=age \
    data.columns.sex=sex data.columns.view=view &&
    $py $check csv "$T/csv.h5" "$F" 1e-5 "$T/csvdir/list.csv" >"$T/csv.txt" 2>&1 &&
    grep -q "missing.png" "$T/csv.log"; then
    rd_pass "$suite/metadata_csv_rows_and_features"
else
    rd_fail "$suite/metadata_csv_rows_and_features" "$(tail -n 3 "$T/csv.log" "$T/csv.txt")"
fi

# An unreadable PNG among them: an error naming it, or skipped.
mkdir -p "$T/mixed"
cp -P "$T"/png/*.png "$T/mixed/"
head -c 5000 "$F/png_grey8_600x500.png" >"$T/mixed/broken.png"
run 1 "$T/clean.log" --images "$T/png" --output "$T/clean.h5"
run 1 "$T/err.log" --images "$T/mixed" --output "$T/err.h5"
status=$?
if [ $status = 1 ] && grep "error" "$T/err.log" | grep -q "broken.png" && [ ! -e "$T/err.h5" ]; then
    rd_pass "$suite/unreadable_png_named_exit_1"
else
    rd_fail "$suite/unreadable_png_named_exit_1" "status $status: $(grep error "$T/err.log" | tail -n 2)"
fi
ok=1 why=""
for np in 1 2; do
    if ! run $np "$T/skip$np.log" --images "$T/mixed" --output "$T/skip$np.h5" embed.on_corrupt=skip; then
        ok=0 why="$np ranks: $(tail -n 2 "$T/skip$np.log")"
    elif ! $py tests/embed/check_embeddings.py same "$T/clean.h5" "$T/skip$np.h5" --data-only >"$T/skip.txt" 2>&1; then
        ok=0 why="$np ranks: $(cat "$T/skip.txt")"
    elif ! $py -c 'import sys, h5py; assert h5py.File(sys.argv[1], "r").attrs["skipped_images"] == 1' "$T/skip$np.h5" ||
        ! grep -q "1 of 4 images could not be read" "$T/skip$np.log"; then
        ok=0 why="$np ranks: skipped_images attribute or log line missing"
    fi
done
if [ $ok = 1 ]; then rd_pass "$suite/on_corrupt_skip_leaves_the_rest_identical"; else rd_fail "$suite/on_corrupt_skip_leaves_the_rest_identical" "$why"; fi

# rdino preprocessing of the PNGs = the pipeline on the same PNGs (cxr_small, 64 px).
C=$shared/data/cxr_small
if [ ! -f "$C/metadata.csv" ]; then
    rd_skip "$suite/rdino_preprocessing_is_the_pipelines" "../shared/data/cxr_small is absent"
    exit 0
fi
data=(--config configs/cxr_small.yaml data.output_dir="$T/cxr" data.metadata_csv="$C/metadata.csv"
    data.image_root="$C/images")
if rd_mpirun 2 "$RDINO_BIN/rdino-preprocess" "${data[@]}" >"$T/pre.log" 2>&1 &&
    rd_mpirun 2 "$RDINO_BIN/rdino-shard" "${data[@]}" >"$T/shard.log" 2>&1 &&
    rd_mpirun 2 "$bin" "${data[@]}" --weights "$F" --output "$T/shards.h5" >"$T/es.log" 2>&1 &&
    rd_mpirun 2 "$bin" "${data[@]}" --weights "$F" --images "$C/metadata.csv" \
        embed.preprocess=rdino --output "$T/pngs.h5" >"$T/ep.log" 2>&1 &&
    $py $check pipeline "$T/shards.h5" "$T/pngs.h5" >"$T/pipe.txt" 2>&1; then
    rd_pass "$suite/rdino_preprocessing_is_the_pipelines"
else
    rd_fail "$suite/rdino_preprocessing_is_the_pipelines" "$(tail -n 2 "$T/pre.log" "$T/shard.log" "$T/es.log" "$T/ep.log" "$T/pipe.txt" 2>&1)"
fi
