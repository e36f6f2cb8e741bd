/* Threads: OpenMP is rdino's one thread pool. */
#ifndef RDINO_THREADS_H
#define RDINO_THREADS_H

/* Elementwise and row loops with fewer elements than this run on one thread (a parallel region
 * costs microseconds; tiny tensors are faster serial). */
#define RD_PARALLEL_MIN 32768

#endif
