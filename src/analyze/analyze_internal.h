/* Shared between the files of the analyze module (not a public interface). */
#ifndef RDINO_ANALYZE_INTERNAL_H
#define RDINO_ANALYZE_INTERNAL_H

#include <stdio.h>

#include "rdino/analyze.h"

/* Index of (target, representation) in the study's arrays. */
static inline int analyze_index(const rd_analyze_study *s, int target, int rep) {
    return target * s->nreps + rep;
}

/* Makes the plots into p->output_dir (rank 0 only); problems are recorded in out, not
 * returned: the report is still worth having without its pictures. */
void analyze_plots(const rd_analyze_params *p, const rd_analyze_data *data,
                   const rd_analyze_study *study, const rd_loss_curve *loss,
                   rd_analyze_outputs *out);

/* The comparison's plots (forest and trajectory per target), as analyze_plots. */
void analyze_compare_plots(const rd_analyze_params *p, const rd_compare_row *rows, int n,
                           rd_analyze_outputs *out);

/* 2-D PCA scores of a representation (for the embedding scatter); scores [n, 2], share[c]
 * the fraction of the total variance along component c. */
rd_status analyze_scatter_scores(const rd_analyze_data *data, int rep, float *scores,
                                 double share[2], rd_error *err);

#endif
