#!/usr/bin/env bash
# Probe statistics: nested grouped CV (5 x 4 folds, 17 penalties), 1000 bootstrap replicates
# and one permutation refit, against scikit-learn's GridSearchCV doing the same nested CV on
# the same data, folds and threads. Sizes: the 535-image CXR set with ViT-B features (768),
# and 5000 images. Ratios are sklearn time / our time (higher is better).
set -u
source tests/lib.sh
bin=$RDINO_BUILD/bench/probe_cv
[ -x "$bin" ] || { echo "RESULT bench_probe: FAILED ($bin not built)"; exit 1; }
rd_tmpdir
for size in "214 768" "2000 768"; do
    set -- $size
    "$bin" "$RD_TMP" "$1" 768 >"$RD_TMP/ours.txt" || exit 1
    n=$(stat -c %s "$RD_TMP/age.f64"); n=$((n / 8))
    /usr/bin/python3 bench/probe_cv_sklearn.py "$RD_TMP" "$n" 768 >"$RD_TMP/peer.txt" || exit 1
    cat "$RD_TMP/ours.txt" "$RD_TMP/peer.txt"
    for model in ridge_age logistic_sex; do
        ours=$(awk -v k="probe_nested_cv_${model}_" 'index($2, k) == 1 { print $3 }' "$RD_TMP/ours.txt")
        peer=$(awk -v k="sklearn_nested_cv_${model}_" 'index($2, k) == 1 { print $3 }' "$RD_TMP/peer.txt")
        awk -v o="$ours" -v p="$peer" -v m="$model" -v s="${n}x768" \
            'BEGIN { printf "RESULT probe_nested_cv_%s_%s speed ratio: %.1f x (sklearn %.2f s / ours %.2f s)\n", m, s, p / o, p, o }'
    done
done
