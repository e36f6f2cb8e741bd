/* safetensors files, the weight format of Hugging Face (format: the README of
 * github.com/huggingface/safetensors):
 *
 *     [8 bytes: n, little-endian uint64] [n bytes: JSON header] [data area]
 *     header = {"NAME": {"dtype": "F32", "shape": [2, 3], "data_offsets": [BEGIN, END]}, ...,
 *               "__metadata__": {"format": "pt"}}           (metadata optional, string -> string)
 *
 * Offsets are bytes relative to the data area, tensors are row-major and little-endian.
 *
 * Reading: rd_safetensors_open validates the whole header and memory-maps the file; it checks
 * everything the header claims against the file, as the reference implementation does, and
 * names the file (and the tensor) in every error: the header length against the file size and a
 * 100 MiB cap, the JSON (an object of objects with exactly dtype / shape / data_offsets of the
 * right JSON types), the dtype, byte count = product(shape) x dtype size (overflow checked), and
 * that the tensors tile the data area exactly: sorted by offset they start at 0, each begins
 * where the previous ends (no overlap, no gap) and the last ends at the end of the file.
 * Values are checked when read, not at open: rd_safetensors_read converts F32, F16 or BF16 to
 * fp32 and fails (RD_ENUMERIC) on the first NaN or infinity, naming the tensor and the element.
 * So looking at a header costs no pass over the data, and every value that reaches the model
 * has been checked once.
 *
 * Writing: rd_safetensors_write produces what the Python `safetensors` library writes: F32
 * tensors in sorted-name order, contiguous, the header compact JSON ("," and ":") with the
 * tensors in that order and __metadata__ last, padded with spaces to a multiple of 8; published
 * atomically (rd_atomic_*: temporary name, fsync, rename, fsync of the folder). */
#ifndef RDINO_SAFETENSORS_H
#define RDINO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "rdino/error.h"

enum { RD_ST_MAX_DIMS = 8 };
#define RD_ST_MAX_HEADER ((uint64_t)100 << 20) /* bytes of JSON header accepted */

/* Element types a header may name; the reader converts F32, F16 and BF16. */
typedef enum {
    RD_ST_BOOL,
    RD_ST_U8,
    RD_ST_I8,
    RD_ST_F8_E5M2,
    RD_ST_F8_E4M3,
    RD_ST_I16,
    RD_ST_U16,
    RD_ST_F16,
    RD_ST_BF16,
    RD_ST_I32,
    RD_ST_U32,
    RD_ST_F32,
    RD_ST_F64,
    RD_ST_I64,
    RD_ST_U64,
    RD_ST_DTYPE_COUNT
} rd_st_dtype;

typedef struct rd_st_tensor {
    char *name;
    rd_st_dtype dtype;
    int ndim;
    int64_t shape[RD_ST_MAX_DIMS];
    uint64_t numel;
    uint64_t begin, end; /* byte range in the data area */
} rd_st_tensor;

typedef struct rd_safetensors {
    char *path;
    const unsigned char *map; /* the whole file, read-only */
    size_t map_bytes;
    const unsigned char *data; /* the data area */
    uint64_t data_bytes;
    rd_st_tensor *tensors; /* sorted by name */
    int count;
    char **meta; /* __metadata__ as pairs: meta[2 i] = key, meta[2 i + 1] = value, file order */
    int meta_count;
} rd_safetensors;

/* Opens and validates path (see above). On failure st is left closed. */
rd_status rd_safetensors_open(rd_safetensors *st, const char *path, rd_error *err);
void rd_safetensors_close(rd_safetensors *st);
/* The tensor called name, or NULL. */
const rd_st_tensor *rd_safetensors_find(const rd_safetensors *st, const char *name);
/* The __metadata__ value of key, or NULL. */
const char *rd_safetensors_meta(const rd_safetensors *st, const char *key);
/* out [t->numel] = the tensor in fp32 (F16 and BF16 converted exactly). RD_EINVAL for other
 * dtypes, RD_ENUMERIC for a NaN or an infinity; both messages name the file and the tensor. */
rd_status rd_safetensors_read(const rd_safetensors *st, const rd_st_tensor *t, float *out,
                              rd_error *err);

/* "F32", "BF16", ...: the header's spelling. */
const char *rd_st_dtype_name(rd_st_dtype dtype);
/* IEEE half and bfloat16 bit patterns to float, exact (subnormals, infinities and NaNs
 * included). */
float rd_f16_to_f32(uint16_t h);
float rd_bf16_to_f32(uint16_t b);

/* One tensor to write: numel = product(shape) floats at data, written as F32. */
typedef struct rd_st_entry {
    const char *name;
    int ndim;
    const int64_t *shape;
    const float *data;
} rd_st_entry;

/* Writes count tensors (names unique, not "__metadata__"; values finite) and the metadata
 * pairs meta = {key, value, ..., NULL} (NULL = no __metadata__) to path, atomically. */
rd_status rd_safetensors_write(const char *path, const rd_st_entry *entries, int count,
                               const char *const *meta, rd_error *err);

#endif
