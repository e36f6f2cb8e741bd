/* Finding labels as the pipeline's files store them: the manifest's finding_<label> columns,
 * the shards' and the embeddings' int8 /meta/finding_<label> datasets (docs/FORMATS.md). The
 * metadata readers (preprocess) make them, the shards (shard) and embed carry them, analyze
 * probes them; this header is their one shared vocabulary, below all of them (io). */
#ifndef RDINO_FINDINGS_H
#define RDINO_FINDINGS_H

enum {
    RD_MAX_FINDINGS = 32,    /* finding labels of one data set */
    RD_FINDING_NAME_MAX = 64 /* a finding column name "finding_<label>" with its NUL */
};

/* Values of the /meta/finding_* columns, as their "meaning" attribute says. */
enum { RD_FINDING_UNKNOWN = -1, RD_FINDING_NEGATIVE = 0, RD_FINDING_POSITIVE = 1 };
#define RD_FINDING_MEANING                                                                         \
    "finding label: 1 = positive, 0 = negative, -1 = unknown (uncertain or not stated, as "        \
    "data.findings.* says)"

#endif
