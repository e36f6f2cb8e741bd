/* Configuration: one YAML file for the whole pipeline, validated against a built-in schema.
 * The pretraining keys follow DINOv2's own schema (ssl_default_config.yaml, with the same
 * defaults) so a DINOv2 or RAD-DINO training YAML loads unchanged; rdino's stages add their
 * own sections. Unknown keys, wrong types and out-of-range values are errors that name the
 * key (and, for unknown keys, the closest valid one). */
#ifndef RDINO_CONFIG_H
#define RDINO_CONFIG_H

#include <stdint.h>

#include "rdino/error.h"

typedef enum {
    RD_CFG_BOOL,
    RD_CFG_INT,
    RD_CFG_FLOAT,
    RD_CFG_STRING,
    RD_CFG_FLOAT_LIST,
    RD_CFG_INT_LIST
} rd_cfg_type;

typedef struct rd_cfg_key {
    const char *name; /* dotted path, e.g. "optim.base_lr" */
    rd_cfg_type type;
    const char *def;     /* default, written as in YAML ("0.004", "[0.32, 1.0]", "") */
    double min, max;     /* allowed numeric range, per element for lists */
    const char *choices; /* strings: "a|b|c"; NULL accepts any string */
    int list_len;        /* lists: required length; 0 = any length up to RD_CFG_LIST_MAX */
    const char *help;
} rd_cfg_key;

enum { RD_CFG_LIST_MAX = 16 };

typedef enum { RD_CFG_FROM_DEFAULT, RD_CFG_FROM_FILE, RD_CFG_FROM_OVERRIDE } rd_cfg_origin;

typedef struct rd_cfg_value {
    char *text; /* canonical text of the value (strings: the string itself) */
    double num;
    int64_t integer;
    int boolean;
    double list[RD_CFG_LIST_MAX];
    int list_len;
    rd_cfg_origin origin;
} rd_cfg_value;

typedef struct rd_config {
    const rd_cfg_key *keys;
    int nkeys;
    rd_cfg_value *values;
} rd_config;

/* The built-in schema (all sections, all programs). */
const rd_cfg_key *rd_config_schema(int *nkeys);

/* Fills every key with its default. */
rd_status rd_config_init(rd_config *cfg, rd_error *err);
void rd_config_free(rd_config *cfg);
/* dst = src, values and origins (dst is initialised here; rd_config_free it, also on failure):
 * a stage that derives values (e.g. from released weights) overrides them in its own copy. */
rd_status rd_config_copy(rd_config *dst, const rd_config *src, rd_error *err);

/* Merges a YAML file over the current values. */
rd_status rd_config_load_file(rd_config *cfg, const char *path, rd_error *err);
/* Same, from a string; 'origin_name' names it in error messages. */
rd_status rd_config_load_string(rd_config *cfg, const char *yaml, const char *origin_name,
                                rd_error *err);
/* Merges a YAML file that may set keys of one section only (e.g. an analysis study file, section
 * "analyze") over cfg, beneath the command line: keys set by an override keep their value, any
 * key outside the section is an error naming the file (cfg is then unchanged). */
rd_status rd_config_load_layer(rd_config *cfg, const char *path, const char *section,
                               rd_error *err);
/* Applies one "key.sub=value" override. */
rd_status rd_config_override(rd_config *cfg, const char *assignment, rd_error *err);

/* Typed access. The key must exist in the schema with that type: asking for an unknown key
 * is a programming error and aborts with a message (tests catch it). */
int64_t rd_cfg_int(const rd_config *cfg, const char *key);
double rd_cfg_float(const rd_config *cfg, const char *key);
int rd_cfg_bool(const rd_config *cfg, const char *key);
const char *rd_cfg_str(const rd_config *cfg, const char *key);
/* Copies up to max elements; returns the list length. */
int rd_cfg_list(const rd_config *cfg, const char *key, double *out, int max);
rd_cfg_origin rd_cfg_origin_of(const rd_config *cfg, const char *key);

/* The fully resolved configuration as YAML (loadable again); caller frees. Values that do
 * not come from the defaults are annotated with a comment. */
char *rd_config_dump(const rd_config *cfg);

/* Levenshtein distance, exposed for the "did you mean" test. */
int rd_edit_distance(const char *a, const char *b);

#endif
