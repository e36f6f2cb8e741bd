/* Threads: OpenMP is rdino's one thread pool, sized once per program against the CPUs the
 * process may run on. */
#ifndef RDINO_THREADS_H
#define RDINO_THREADS_H

/* Elementwise and row loops with fewer elements than this run on one thread (a parallel region
 * costs microseconds; tiny tensors are faster serial). */
#define RD_PARALLEL_MIN 32768

/* CPUs in this process's affinity mask (sched_getaffinity; what mpirun or srun bound it to). */
int rd_affinity_cpus(void);

/* Sets the OpenMP threads of this process and returns their count: requested when > 0 (source
 * names the setting, e.g. "pretrain.threads"), else OMP_NUM_THREADS when set, else the CPUs of
 * the affinity mask. Warns (on this rank) when the count exceeds the mask's CPUs: the threads
 * then share cores and run at a fraction of their speed, which is what Open MPI's default
 * binding (one core per rank when it starts 2 ranks or fewer) does silently. Each distinct
 * count warns once. */
int rd_threads_setup(int requested, const char *source);

#endif
