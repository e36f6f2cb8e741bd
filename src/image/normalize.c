/* Intensity windows (min-max, percentiles) and quantisation to 8/16-bit. See
 * include/rdino/image.h. */
#include "rdino/image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "simd.h"

const char *rd_norm_name(rd_norm norm) {
    return norm == RD_NORM_PERCENTILE ? "percentile" : "minmax";
}

int rd_norm_parse(const char *name) {
    if (strcmp(name, "minmax") == 0) return RD_NORM_MINMAX;
    if (strcmp(name, "percentile") == 0) return RD_NORM_PERCENTILE;
    return -1;
}

static void min_max(const float *x, size_t n, float *lo, float *hi) {
    v8f vlo = v8_set1(x[0]), vhi = vlo;
    size_t i = 0;
    for (; i + V8 <= n; i += V8) {
        v8f v = v8_load(x + i);
        vlo = v8_min(vlo, v);
        vhi = v8_max(vhi, v);
    }
    float l = x[0], h = x[0];
    for (int k = 0; k < V8; k++) {
        l = vlo[k] < l ? vlo[k] : l;
        h = vhi[k] > h ? vhi[k] : h;
    }
    for (; i < n; i++) {
        l = x[i] < l ? x[i] : l;
        h = x[i] > h ? x[i] : h;
    }
    *lo = l;
    *hi = h;
}

static int compare_floats(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static float median3(float a, float b, float c) {
    if (a > b) {
        float t = a;
        a = b;
        b = t;
    }
    return c < a ? a : c > b ? b : c;
}

/* The k-th smallest of a[0..n) (a is permuted). Hoare quickselect with a median-of-three pivot;
 * after 64 rounds (adversarial data) the remaining range is sorted instead. */
static float select_kth(float *a, size_t n, size_t k) {
    size_t lo = 0, hi = n - 1;
    for (int round = 0; lo < hi; round++) {
        if (round == 64) {
            qsort(a + lo, hi - lo + 1, sizeof *a, compare_floats);
            break;
        }
        float pivot = median3(a[lo], a[lo + (hi - lo) / 2], a[hi]);
        size_t i = lo, j = hi;
        for (;;) { /* invariant: a[lo..i) <= pivot <= a(j..hi] */
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i >= j) break;
            float t = a[i];
            a[i] = a[j];
            a[j] = t;
            i++;
            j--;
        }
        if (i == j) { /* a[i] == pivot sits in its final place */
            if (k == i) return a[k];
            if (k < i)
                hi = i - 1;
            else
                lo = i + 1;
        } else { /* a[lo..j] <= pivot <= a[i..hi], and a(j..i) == pivot */
            if (k <= j)
                hi = j;
            else if (k >= i)
                lo = i;
            else
                return a[k];
        }
    }
    return a[k];
}

/* The p-th percentile of a[0..n) when a[0..base) already holds the base smallest values in
 * place (base 0: nothing known); only a[base..n) is permuted. *rank is the rank selected. */
static float percentile_from(float *a, size_t n, size_t base, double p, size_t *rank) {
    double h = p / 100.0 * (double)(n - 1);
    if (h < 0.0) h = 0.0;
    if (h > (double)(n - 1)) h = (double)(n - 1);
    size_t f = (size_t)floor(h);
    if (f < base) base = 0;
    double below = select_kth(a + base, n - base, f - base);
    *rank = f;
    if (f + 1 >= n || h == (double)f) return (float)below;
    /* Selection left everything above rank f in a[f+1..n): its minimum is rank f + 1. */
    float above = a[f + 1];
    for (size_t i = f + 2; i < n; i++) above = a[i] < above ? a[i] : above;
    return (float)(below + (h - (double)f) * ((double)above - below));
}

float rd_percentile(const float *x, size_t n, double p, float *scratch) {
    size_t rank;
    memcpy(scratch, x, n * sizeof *x);
    return percentile_from(scratch, n, 0, p, &rank);
}

void rd_norm_window(const float *x, size_t n, rd_norm norm, double lo_pct, double hi_pct,
                    float *scratch, float *lo, float *hi) {
    if (norm == RD_NORM_PERCENTILE) {
        /* One copy; the second selection only searches above the first one's rank. */
        size_t rank;
        memcpy(scratch, x, n * sizeof *x);
        *lo = percentile_from(scratch, n, 0, lo_pct, &rank);
        *hi = percentile_from(scratch, n, rank, hi_pct, &rank);
    } else {
        min_max(x, n, lo, hi);
    }
}

unsigned rd_quantize(const float *x, size_t n, float lo, float hi, int depth, void *out) {
    size_t sample_bytes = depth == 16 ? 2 : 1;
    /* Resampling a flat image leaves float ripples of ~1e-7 relative; a window narrower than
     * 1e-5 of the intensity scale is a constant image, not contrast to stretch. */
    float scale_of_values = fmaxf(fabsf(lo), fabsf(hi));
    if (!(hi - lo > 1e-5f * scale_of_values)) {
        memset(out, 0, n * sample_bytes);
        return RD_NORM_WARN_CONSTANT;
    }
    const float maxval = depth == 16 ? 65535.0f : 255.0f;
    const float scale = maxval / (hi - lo);
    const v8f vlo = v8_set1(lo), vscale = v8_set1(scale), half = v8_set1(0.5f);
    const v8f zero = v8_set1(0.0f), top = v8_set1(maxval);
    size_t i = 0;
    for (; i + V8 <= n; i += V8) {
        v8f v = v8_min(v8_max((v8_load(x + i) - vlo) * vscale, zero), top) + half;
        v8i q = __builtin_convertvector(v, v8i); /* truncation = floor for v >= 0 */
        if (sample_bytes == 1)
            for (int k = 0; k < V8; k++) ((uint8_t *)out)[i + k] = (uint8_t)q[k];
        else
            for (int k = 0; k < V8; k++) ((uint16_t *)out)[i + k] = (uint16_t)q[k];
    }
    for (; i < n; i++) {
        float v = (x[i] - lo) * scale;
        v = v < 0.0f ? 0.0f : v > maxval ? maxval : v;
        int q = (int)(v + 0.5f);
        if (sample_bytes == 1)
            ((uint8_t *)out)[i] = (uint8_t)q;
        else
            ((uint16_t *)out)[i] = (uint16_t)q;
    }
    return 0;
}
