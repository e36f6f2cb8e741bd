/* Errors are returned, never raised: every fallible function takes an rd_error* as its last
 * argument, fills it on failure and returns the status code (RD_OK == 0 on success). */
#ifndef RDINO_ERROR_H
#define RDINO_ERROR_H

#include <stdarg.h>

typedef enum {
    RD_OK = 0,
    RD_EIO,       /* file system or MPI-IO failure */
    RD_EFORMAT,   /* input file is not what it claims to be */
    RD_ENOMEM,    /* allocation failed or arena exhausted */
    RD_EINVAL,    /* bad argument, bad config value */
    RD_ERANGE,    /* value outside its allowed range */
    RD_ENOTFOUND, /* missing file, key or record */
    RD_EMPI,      /* MPI call failed */
    RD_EHDF5,     /* HDF5 call failed */
    RD_ENUMERIC,  /* non-finite value where a finite one is required */
    RD_EINTR,     /* interrupted by a signal; state was saved */
    RD_ECORRUPT   /* stored data fails its checksum (a damaged image of a shard) */
} rd_status;

enum { RD_ERROR_MSG_MAX = 1024 };

typedef struct rd_error {
    rd_status code;
    char msg[RD_ERROR_MSG_MAX];
    int agreed; /* 1: every rank holds this same error (rd_agree), so nobody needs to abort */
} rd_error;

/* Formats the message into err (if not NULL; agreed becomes 0) and returns code. */
rd_status rd_fail(rd_error *err, rd_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
rd_status rd_vfail(rd_error *err, rd_status code, const char *fmt, va_list ap);

/* Prefixes an existing message with more context ("reading shard-00001.h5: " + msg). */
rd_status rd_wrap(rd_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void rd_error_clear(rd_error *err);
const char *rd_status_name(rd_status code);

#endif
