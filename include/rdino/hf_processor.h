/* preprocessor_config.json, the file in which a Hugging Face snapshot names its image
 * preprocessing: transformers' BitImageProcessor settings (models/bit/image_processing_bit.py),
 * as microsoft/rad-dino and facebook/dinov2-* ship them. Read into rd_hf_processor (what
 * rd_hf_preprocess_png runs, hf_preprocess.h) and written by rdino's export.
 *
 * Keys (a missing or null key takes BitImageProcessor's constructor default, rd_hf_bit_defaults):
 *   "do_convert_rgb": bool             do_convert_rgb        (default true; false accepts only
 *                                      8-bit RGB PNGs, see rd_pillow_png_to_rgb)
 *   "do_resize": bool                  do_resize             (true)
 *   "size": {"shortest_edge": S}       shortest_edge = S     ({"shortest_edge": 224})
 *   "size": {"height": H, "width": W}  size_height, size_width, shortest_edge = 0
 *   "size": S (a bare number)          shortest_edge = S (get_size_dict, default_to_square=False)
 *                                      (any other size form is an error in BitImageProcessor)
 *   "resample": int                    resample: PIL filter number; only 3 (BICUBIC) is
 *                                      implemented, others are an error (3)
 *   "do_center_crop": bool             do_center_crop        (true)
 *   "crop_size": {"height": H, "width": W}  crop_height, crop_width  (224 x 224)
 *   "crop_size": N (a bare number)     crop_height = crop_width = N
 *   "do_rescale": bool                 do_rescale            (true)
 *   "rescale_factor": number           rescale_factor        (1/255)
 *   "do_normalize": bool               do_normalize          (true)
 *   "image_mean": [m0, m1, m2] or m    image_mean[3] (a single number fills all three)
 *                                      (OPENAI_CLIP_MEAN 0.48145466, 0.4578275, 0.40821073)
 *   "image_std": [s0, s1, s2] or s     image_std[3]
 *                                      (OPENAI_CLIP_STD 0.26862954, 0.26130258, 0.27577711)
 *   "image_processor_type"             required, "BitImageProcessor" (another processor, e.g.
 *                                      the torchvision-based BitImageProcessorFast, computes
 *                                      other pixels)
 *   "processor_class"                  ignored (names the processor bundle, not pixels)
 *   "rdino_preprocessing"              ignored here: rdino's export records in it the exact
 *                                      pipeline the model was trained on (docs/FORMATS.md)
 * Any other key is an error naming the file and the key: it could change the pixels.
 * microsoft/rad-dino: shortest_edge 518, crop 518 x 518, rescale 1/255, mean 0.5307 and std
 * 0.2583 on all three channels, bicubic, every step on. */
#ifndef RDINO_HF_PROCESSOR_H
#define RDINO_HF_PROCESSOR_H

#include "rdino/error.h"
#include "rdino/json.h"

/* The file's name in a snapshot folder. */
#define RD_HF_PROCESSOR_FILE "preprocessor_config.json"

typedef struct rd_hf_processor {
    int do_convert_rgb;
    int do_resize;
    int shortest_edge;           /* > 0: resize the shorter side to this */
    int size_height, size_width; /* used when shortest_edge is 0 */
    int resample;                /* PIL filter number: 3 (BICUBIC) only */
    int do_center_crop;
    int crop_height, crop_width;
    int do_rescale;
    double rescale_factor;
    int do_normalize;
    double image_mean[3], image_std[3];
} rd_hf_processor;

/* BitImageProcessor's defaults (the values of keys a config leaves out). */
rd_hf_processor rd_hf_bit_defaults(void);

/* RD_EINVAL with a message naming the setting when p cannot be run (resample other than 3, a
 * size or crop that is not positive, a std of 0, non-finite numbers). */
rd_status rd_hf_check(const rd_hf_processor *p, rd_error *err);

/* Reads path (as above) into *p and checks it (rd_hf_check); errors name the file and key. */
rd_status rd_hf_processor_load(const char *path, rd_hf_processor *p, rd_error *err);

/* Writes p as transformers 4.47.1's save_pretrained writes a BitImageProcessor (sorted keys,
 * 2-space indent, numbers that read back exactly), published atomically. rdino_record (may be
 * NULL; not stolen) is stored under "rdino_preprocessing". */
rd_status rd_hf_processor_save(const char *path, const rd_hf_processor *p,
                               const json_t *rdino_record, rd_error *err);

#endif
