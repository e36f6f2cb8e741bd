#include "rdino/threads.h"

#include <omp.h>
#include <sched.h>
#include <stdlib.h>

#include "rdino/log.h"

int rd_affinity_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return omp_get_num_procs();
    int n = CPU_COUNT(&set);
    return n > 0 ? n : 1;
}

int rd_threads_setup(int requested, const char *source) {
    static int warned_for = 0;
    const int cpus = rd_affinity_cpus();
    const char *env = getenv("OMP_NUM_THREADS");
    int threads;
    if (requested > 0) {
        threads = requested;
    } else if (env && *env) {
        threads = omp_get_max_threads(); /* libgomp parsed it (it may be a list) */
        source = "OMP_NUM_THREADS";
    } else {
        threads = cpus;
        source = NULL;
    }
    omp_set_num_threads(threads);
    if (threads > cpus && threads != warned_for) {
        warned_for = threads;
        rd_warn("%d OpenMP threads (%s=%d) but only %d CPU%s in this rank's affinity mask: the "
                "threads share %s and run at about %d%% speed. Give each rank %d CPUs: mpirun "
                "--bind-to none (one rank per node) or --map-by slot:PE=%d, srun "
                "--cpus-per-task=%d",
                threads, source, threads, cpus, cpus == 1 ? "" : "s", cpus == 1 ? "it" : "them",
                100 * cpus / threads, threads, threads, threads);
    }
    return threads;
}
