#include "rdino/error.h"

#include <stdio.h>
#include <string.h>

rd_status rd_vfail(rd_error *err, rd_status code, const char *fmt, va_list ap) {
    if (err) {
        err->code = code;
        err->agreed = 0;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return code;
}

rd_status rd_fail(rd_error *err, rd_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    rd_vfail(err, code, fmt, ap);
    va_end(ap);
    return code;
}

rd_status rd_wrap(rd_error *err, const char *fmt, ...) {
    if (!err) return RD_EINVAL;
    char old[RD_ERROR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    size_t used = n < 0 ? 0 : (size_t)n;
    if (used + 3 < sizeof err->msg) {
        size_t room = sizeof err->msg - used - 3;
        size_t len = strnlen(old, room);
        memcpy(err->msg + used, ": ", 2);
        memcpy(err->msg + used + 2, old, len);
        err->msg[used + 2 + len] = '\0';
    }
    return err->code;
}

void rd_error_clear(rd_error *err) {
    if (!err) return;
    err->code = RD_OK;
    err->msg[0] = '\0';
    err->agreed = 0;
}

const char *rd_status_name(rd_status code) {
    switch (code) {
    case RD_OK:
        return "ok";
    case RD_EIO:
        return "I/O error";
    case RD_EFORMAT:
        return "bad format";
    case RD_ENOMEM:
        return "out of memory";
    case RD_EINVAL:
        return "invalid argument";
    case RD_ERANGE:
        return "out of range";
    case RD_ENOTFOUND:
        return "not found";
    case RD_EMPI:
        return "MPI error";
    case RD_EHDF5:
        return "HDF5 error";
    case RD_ENUMERIC:
        return "non-finite value";
    case RD_EINTR:
        return "interrupted";
    case RD_ECORRUPT:
        return "corrupt data";
    }
    return "unknown error";
}
