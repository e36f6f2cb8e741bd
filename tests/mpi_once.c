#include "mpi_once.h"

#include <mpi.h>
#include <stdlib.h>

static void finalize_mpi(void) {
    MPI_Finalize();
}

void rd_test_need_mpi(void) {
    int started = 0;
    MPI_Initialized(&started);
    if (!started) {
        MPI_Init(NULL, NULL);
        atexit(finalize_mpi);
    }
}
