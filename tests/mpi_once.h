/* MPI for single-process C tests of MPI-aware library code (HDF5 over MPI-IO, collectives on
 * MPI_COMM_WORLD of size 1). */
#ifndef RDINO_TEST_MPI_ONCE_H
#define RDINO_TEST_MPI_ONCE_H

/* Initialises MPI on first use and finalises it at exit. */
void rd_test_need_mpi(void);

#endif
