/* Parallel HDF5 store: see include/rdino/h5store.h for the contract. */
#include "rdino/h5store.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rdino/agree.h"
#include "rdino/file.h"

/* ---- the process-wide lock (Debian's HDF5 is not thread-safe) ---- */

static pthread_mutex_t hdf5_mutex = PTHREAD_MUTEX_INITIALIZER;

void rd_hdf5_lock(void) {
    pthread_mutex_lock(&hdf5_mutex);
}

void rd_hdf5_unlock(void) {
    pthread_mutex_unlock(&hdf5_mutex);
}

/* ---- errors ---- */

typedef struct {
    char text[600];
    int count;
} h5_reason;

static herr_t collect_reason(unsigned n, const H5E_error2_t *e, void *data) {
    (void)n;
    h5_reason *r = data;
    if (r->count >= 3 || !e->desc || !e->desc[0]) return 0;
    size_t used = strlen(r->text);
    snprintf(r->text + used, sizeof r->text - used, "%s%s", r->count ? "; " : "", e->desc);
    r->count++;
    return 0;
}

/* Fails with "<file>: <object>: <what>: <HDF5's reasons, innermost first>" and clears
 * HDF5's error stack. */
static rd_status h5_fail(rd_error *err, const rd_h5file *f, const char *obj, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static rd_status h5_fail(rd_error *err, const rd_h5file *f, const char *obj, const char *fmt, ...) {
    char what[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    h5_reason reason = {{0}, 0};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect_reason, &reason);
    H5Eclear2(H5E_DEFAULT);
    for (char *c = reason.text; (c = strchr(c, '\n')) != NULL;) *c = ' '; /* one line in a log */
    return rd_fail(err, RD_EHDF5, "%s: %s%s%s%s%s", f->path, obj ? obj : "", obj ? ": " : "", what,
                   reason.count ? ": HDF5: " : "", reason.text);
}

static void quiet_hdf5(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

size_t rd_h5_type_size(rd_h5_type type) {
    switch (type) {
    case RD_H5_U8:
    case RD_H5_I8:
        return 1;
    case RD_H5_U16:
        return 2;
    case RD_H5_U32:
    case RD_H5_I32:
    case RD_H5_F32:
        return 4;
    case RD_H5_I64:
    case RD_H5_F64:
        return 8;
    case RD_H5_STRING:
        return 0;
    }
    return 0;
}

/* Memory and file use the same native type, so no conversion ever breaks collective I/O. */
static hid_t native_type(rd_h5_type type) {
    switch (type) {
    case RD_H5_U8:
        return H5T_NATIVE_UINT8;
    case RD_H5_U16:
        return H5T_NATIVE_UINT16;
    case RD_H5_U32:
        return H5T_NATIVE_UINT32;
    case RD_H5_I8:
        return H5T_NATIVE_INT8;
    case RD_H5_I32:
        return H5T_NATIVE_INT32;
    case RD_H5_I64:
        return H5T_NATIVE_INT64;
    case RD_H5_F32:
        return H5T_NATIVE_FLOAT;
    case RD_H5_F64:
        return H5T_NATIVE_DOUBLE;
    case RD_H5_STRING:
        break;
    }
    return H5I_INVALID_HID;
}

static hid_t string_type(size_t width) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    if (H5Tset_size(t, width) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0 ||
        H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* ---- files ---- */

static rd_status init_handle(rd_h5file *f, const char *path, MPI_Comm comm, rd_error *err) {
    memset(f, 0, sizeof *f);
    f->id = H5I_INVALID_HID;
    f->fd = -1;
    f->comm = comm;
    MPI_Comm_rank(comm, &f->rank);
    MPI_Comm_size(comm, &f->nranks);
    if (snprintf(f->path, sizeof f->path, "%s", path) >= (int)sizeof f->path)
        return rd_fail(err, RD_EINVAL, "path too long: %s", path);
    quiet_hdf5();
    return RD_OK;
}

/* MPI-IO when several ranks share the file; HDF5's POSIX driver (sec2) when one rank has it,
 * reading or writing: nothing between HDF5 and pread/pwrite, and a failed write is an ordinary
 * error. File locking is used where the file system supports it. */
static hid_t make_fapl(const rd_h5file *f) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return fapl;
    herr_t st = H5Pset_file_locking(fapl, 1, 1);
    if (st >= 0 && f->nranks > 1) {
        st = H5Pset_fapl_mpio(fapl, f->comm, MPI_INFO_NULL);
        if (st >= 0) st = H5Pset_all_coll_metadata_ops(fapl, 1);
        if (st >= 0) st = H5Pset_coll_metadata_write(fapl, 1);
    } else if (st >= 0) {
        st = H5Pset_fapl_sec2(fapl);
    }
    if (st < 0) {
        H5Pclose(fapl);
        return H5I_INVALID_HID;
    }
    return fapl;
}

/* A filtered collective write mallocs and frees two chunk-sized buffers per chunk. With glibc's
 * defaults each free hands the pages back to the kernel (heap trimming), so every chunk pays
 * for page faults and zeroing again: 1.5-3x slower writes (bench/bench_shard.sh). Keeping up
 * to 256 MiB of freed heap, and serving chunks up to 32 MiB from it, stops that churn. */
static void keep_chunk_buffers(void) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

/* The file descriptor of a file written through the POSIX driver, -1 otherwise. */
static int posix_fd(const rd_h5file *f) {
    void *handle = NULL;
    if (f->nranks > 1 || H5Fget_vfd_handle(f->id, H5P_DEFAULT, &handle) < 0 || !handle) return -1;
    return *(int *)handle;
}

rd_status rd_h5_create(rd_h5file *f, const char *path, MPI_Comm comm, rd_error *err) {
    keep_chunk_buffers();
    if (init_handle(f, path, comm, err)) return err ? err->code : RD_EINVAL;
    rd_status st = rd_temp_path(f->tmp_path, sizeof f->tmp_path, path, err);
    if (st) return st; /* the same verdict on every rank: the same path */
    hid_t fapl = make_fapl(f);
    if (fapl < 0) st = h5_fail(err, f, NULL, "cannot set up file access");
    if (!st) {
        f->id = H5Fcreate(f->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
        if (f->id < 0) st = h5_fail(err, f, NULL, "cannot create temporary file %s", f->tmp_path);
    }
    if (fapl >= 0) H5Pclose(fapl);
    f->writing = f->id >= 0;
    if (f->writing) f->fd = posix_fd(f);
    f->fletcher32 = 1;
    return rd_agree(f->comm, st, err);
}

void rd_h5_set_fletcher32(rd_h5file *f, int on) {
    f->fletcher32 = on != 0;
}

rd_status rd_h5_check_room(rd_h5file *f, int64_t bytes, rd_error *err) {
    rd_status st = RD_OK;
    if (f->rank == 0) {
        /* through MPI-IO a failed write is fatal: the allocation test, which sees quotas too */
        int rc = f->nranks > 1 ? rd_room_alloc_errno(f->tmp_path, bytes)
                               : rd_room_errno(f->tmp_path, bytes);
        if (rc)
            st = rd_fail(err, RD_EIO, "%s: no room for the %.2f MB it needs (in %s): %s", f->path,
                         (double)bytes / 1e6, f->tmp_path, strerror(rc));
    }
    return rd_agree(f->comm, st, err);
}

rd_status rd_h5_publish(rd_h5file *f, rd_error *err) {
    if (!f->writing) return rd_fail(err, RD_EINVAL, "%s: not open for writing", f->path);
    /* Flushed first: a failed flush (a full disk) leaves the file for rd_h5_discard to close,
     * where a failed H5Fclose leaves it broken, not to be touched again. */
    rd_status st = RD_OK;
    if (H5Fflush(f->id, H5F_SCOPE_LOCAL) < 0) {
        st = h5_fail(err, f, NULL, "writing %s failed", f->tmp_path);
    } else {
        if (H5Fclose(f->id) < 0) st = h5_fail(err, f, NULL, "closing %s failed", f->tmp_path);
        f->id = H5I_INVALID_HID;
    }
    st = rd_agree(f->comm, st, err);
    if (st) {
        rd_h5_discard(f);
        return st;
    }
    f->writing = 0;
    if (f->rank == 0) st = rd_publish_file(f->tmp_path, f->path, err);
    return rd_agree(f->comm, st, err);
}

void rd_h5_discard(rd_h5file *f) {
    /* Closing writes what HDF5 still holds. When that fails (a full disk), the file stays in
     * HDF5's tables and HDF5 1.10.8 crashes closing it again at exit. So a POSIX file being thrown
     * away has its descriptor pointed at an anonymous memory file, where the last writes cannot
     * fail; and a flush comes before the close, which after a failed flush (rd_h5_publish) puts
     * HDF5's cache back in order: H5Fclose alone fails again (tests/shard/test_shard.sh fills
     * a tmpfs while a shard is written). */
    if (f->writing && f->fd >= 0) {
        int sink = memfd_create("rdino-discarded", 0);
        if (sink >= 0 && dup2(sink, f->fd) >= 0) f->fd = -1;
        if (sink >= 0) close(sink);
    }
    if (f->id >= 0) {
        H5Fflush(f->id, H5F_SCOPE_LOCAL);
        H5Fclose(f->id);
    }
    f->id = H5I_INVALID_HID;
    if (f->writing && f->rank == 0) unlink(f->tmp_path);
    f->writing = 0;
    H5Eclear2(H5E_DEFAULT);
}

rd_status rd_h5_open(rd_h5file *f, const char *path, MPI_Comm comm, rd_error *err) {
    if (init_handle(f, path, comm, err)) return err ? err->code : RD_EINVAL;
    if (access(path, R_OK) != 0)
        return rd_fail(err, errno == ENOENT ? RD_ENOTFOUND : RD_EIO, "cannot open %s: %s", path,
                       strerror(errno));
    rd_status st = RD_OK;
    hid_t fapl = make_fapl(f);
    if (fapl < 0) st = h5_fail(err, f, NULL, "cannot set up file access");
    if (!st) {
        f->id = H5Fopen(path, H5F_ACC_RDONLY, fapl);
        if (f->id < 0) st = h5_fail(err, f, NULL, "not a readable HDF5 file");
    }
    if (fapl >= 0) H5Pclose(fapl);
    return rd_agree(f->comm, st, err);
}

void rd_h5_close(rd_h5file *f) {
    if (f->id >= 0) H5Fclose(f->id);
    f->id = H5I_INVALID_HID;
    H5Eclear2(H5E_DEFAULT);
}

int rd_h5_exists(const rd_h5file *f, const char *name) {
    /* H5Lexists needs each parent to exist: check every prefix. */
    char buf[RD_PATH_MAX];
    if (strcmp(name, "/") == 0) return 1;
    snprintf(buf, sizeof buf, "%s", name);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            htri_t e = H5Lexists(f->id, buf, H5P_DEFAULT);
            H5Eclear2(H5E_DEFAULT);
            if (e <= 0) return 0;
            *p = saved;
            if (!saved) return 1;
        }
    }
}

/* ---- datasets ---- */

static hid_t create_dcpl(int ndim, const hsize_t *dims, const hsize_t *chunk, int deflate,
                         int fletcher32) {
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl < 0) return dcpl;
    int empty = 0;
    for (int i = 0; i < ndim; i++) empty |= dims[i] == 0;
    /* No fill values (every element gets written) and no timestamps (same content, same
     * bytes). */
    herr_t st = H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    if (st >= 0) st = H5Pset_obj_track_times(dcpl, 0);
    /* Filters need chunks. Without one the dataset is contiguous with its space allocated at
     * creation: rows go from the caller's buffer straight to the file (a chunk passes through
     * HDF5's chunk cache, one more copy), and row i sits at a fixed offset. An empty dataset has
     * nothing to chunk or checksum: it stays contiguous. */
    if (!empty && (fletcher32 || deflate > 0)) {
        if (st >= 0) st = H5Pset_chunk(dcpl, ndim, chunk);
        if (fletcher32 && st >= 0) st = H5Pset_fletcher32(dcpl);
        if (deflate > 0 && st >= 0) st = H5Pset_shuffle(dcpl);
        if (deflate > 0 && st >= 0) st = H5Pset_deflate(dcpl, (unsigned)deflate);
    } else if (st >= 0) {
        st = H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
    }
    if (st < 0) {
        H5Pclose(dcpl);
        return H5I_INVALID_HID;
    }
    return dcpl;
}

static rd_status create_any(rd_h5file *f, const char *name, hid_t file_type, int ndim,
                            const int64_t *dims, const int64_t *chunk, int deflate, rd_error *err) {
    if (ndim < 1 || ndim > RD_H5_MAX_DIMS || deflate < 0 || deflate > 9)
        return rd_fail(err, RD_EINVAL, "%s: %s: bad rank %d or deflate level %d", f->path, name,
                       ndim, deflate);
    hsize_t d[RD_H5_MAX_DIMS], c[RD_H5_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0 || (chunk && chunk[i] < 0))
            return rd_fail(err, RD_EINVAL, "%s: %s: negative dimension", f->path, name);
        d[i] = (hsize_t)dims[i];
        hsize_t want = chunk && chunk[i] > 0 ? (hsize_t)chunk[i] : (i == 0 ? 1 : d[i]);
        c[i] = want > d[i] ? d[i] : want;
        if (c[i] == 0) c[i] = 1;
    }
    rd_status st = RD_OK;
    hid_t space = H5Screate_simple(ndim, d, NULL);
    hid_t dcpl = create_dcpl(ndim, d, c, deflate, f->fletcher32);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (space < 0 || dcpl < 0 || lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0)
        st = h5_fail(err, f, name, "cannot set up dataset creation");
    if (!st) {
        hid_t ds = H5Dcreate2(f->id, name, file_type, space, lcpl, dcpl, H5P_DEFAULT);
        if (ds < 0)
            st = h5_fail(err, f, name, "cannot create dataset");
        else
            H5Dclose(ds);
    }
    if (lcpl >= 0) H5Pclose(lcpl);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return rd_agree(f->comm, st, err);
}

rd_status rd_h5_create_dataset(rd_h5file *f, const char *name, rd_h5_type type, int ndim,
                               const int64_t *dims, const int64_t *chunk, int deflate,
                               rd_error *err) {
    if (type == RD_H5_STRING)
        return rd_fail(err, RD_EINVAL, "%s: %s: use rd_h5_create_strings", f->path, name);
    return create_any(f, name, native_type(type), ndim, dims, chunk, deflate, err);
}

rd_status rd_h5_create_strings(rd_h5file *f, const char *name, int64_t n, size_t width,
                               int64_t chunk_rows, int deflate, rd_error *err) {
    if (width < 1) return rd_fail(err, RD_EINVAL, "%s: %s: string width 0", f->path, name);
    hid_t type = string_type(width);
    if (type < 0) return h5_fail(err, f, name, "cannot make a string type of width %zu", width);
    int64_t chunk = chunk_rows > 0 ? chunk_rows : 4096;
    rd_status st = create_any(f, name, type, 1, &n, &chunk, deflate, err);
    H5Tclose(type);
    return st;
}

/* An open dataset with its dataspace and row geometry. */
typedef struct {
    hid_t ds, space;
    int ndim;
    hsize_t dims[RD_H5_MAX_DIMS];
} open_dataset;

static void close_dataset(open_dataset *d) {
    if (d->space >= 0) H5Sclose(d->space);
    if (d->ds >= 0) H5Dclose(d->ds);
    d->space = d->ds = H5I_INVALID_HID;
}

static rd_status open_rows(const rd_h5file *f, const char *name, int64_t row0, int64_t nrows,
                           open_dataset *d, rd_error *err) {
    d->ds = d->space = H5I_INVALID_HID;
    if (f->id < 0) return rd_fail(err, RD_EINVAL, "%s: %s: file is not open", f->path, name);
    if (!rd_h5_exists(f, name))
        return rd_fail(err, RD_ENOTFOUND, "%s: no dataset %s", f->path, name);
    d->ds = H5Dopen2(f->id, name, H5P_DEFAULT);
    if (d->ds >= 0) d->space = H5Dget_space(d->ds);
    if (d->ds < 0 || d->space < 0) {
        close_dataset(d);
        return h5_fail(err, f, name, "cannot open dataset");
    }
    d->ndim = H5Sget_simple_extent_dims(d->space, d->dims, NULL);
    if (d->ndim < 1 || d->ndim > RD_H5_MAX_DIMS) {
        close_dataset(d);
        return rd_fail(err, RD_EFORMAT, "%s: %s: expected an array of rank 1..%d", f->path, name,
                       RD_H5_MAX_DIMS);
    }
    if (row0 < 0 || nrows < 0 || (hsize_t)(row0 + nrows) > d->dims[0]) {
        close_dataset(d);
        return rd_fail(err, RD_ERANGE, "%s: %s: rows %lld..%lld outside 0..%llu", f->path, name,
                       (long long)row0, (long long)(row0 + nrows), (unsigned long long)d->dims[0]);
    }
    return RD_OK;
}

/* Selects rows [row0, row0 + nrows) of d in the file and returns the matching memory space. */
static hid_t select_rows(open_dataset *d, int64_t row0, int64_t nrows) {
    hsize_t start[RD_H5_MAX_DIMS] = {0}, count[RD_H5_MAX_DIMS];
    memcpy(count, d->dims, sizeof count);
    start[0] = (hsize_t)row0;
    count[0] = (hsize_t)nrows;
    hid_t mem = H5Screate_simple(d->ndim, count, NULL);
    if (mem < 0) return mem;
    herr_t st = nrows == 0
                    ? (H5Sselect_none(d->space) < 0 || H5Sselect_none(mem) < 0 ? -1 : 0)
                    : H5Sselect_hyperslab(d->space, H5S_SELECT_SET, start, NULL, count, NULL);
    if (st < 0) {
        H5Sclose(mem);
        return H5I_INVALID_HID;
    }
    return mem;
}

/* Reads or writes rows [row0, row0 + nrows); *bytes (optional) receives the bytes moved. */
static rd_status transfer_rows(const rd_h5file *f, const char *name, hid_t mem_type, int64_t row0,
                               int64_t nrows, void *buf, int write, size_t *bytes, rd_error *err) {
    open_dataset d;
    rd_status st = open_rows(f, name, row0, nrows, &d, err);
    if (st) return st;
    hid_t mem = select_rows(&d, row0, nrows);
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    if (mem < 0 || dxpl < 0) st = h5_fail(err, f, name, "cannot select rows");
    /* Filtered writes through MPI-IO must be collective. */
    if (!st && write && f->nranks > 1 && H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0)
        st = h5_fail(err, f, name, "cannot request collective transfer");
    /* An empty dataset has no storage to transfer to or from. */
    int empty = 0;
    for (int i = 0; i < d.ndim; i++) empty |= d.dims[i] == 0;
    if (!st && !empty) {
        herr_t h = write ? H5Dwrite(d.ds, mem_type, mem, d.space, dxpl, buf)
                         : H5Dread(d.ds, mem_type, mem, d.space, dxpl, buf);
        if (h < 0)
            st = h5_fail(err, f, name, "%s rows %lld..%lld failed", write ? "writing" : "reading",
                         (long long)row0, (long long)(row0 + nrows));
    }
    if (!st && bytes) {
        *bytes = (size_t)nrows * H5Tget_size(mem_type);
        for (int i = 1; i < d.ndim; i++) *bytes *= (size_t)d.dims[i];
    }
    if (dxpl >= 0) H5Pclose(dxpl);
    if (mem >= 0) H5Sclose(mem);
    close_dataset(&d);
    return st;
}

/* Starts the disk writing what a POSIX file has received (Linux's sync_file_range), every
 * WRITEBACK_BYTES: the fsync before publishing then waits for the last few MiB, not for the whole
 * file, and the page cache does not fill with dirty pages first. tmpfs ignores it. */
enum { WRITEBACK_BYTES = 4 << 20 };

static void start_writeback(rd_h5file *f, size_t bytes) {
    f->unflushed += bytes;
    if (f->fd < 0 || f->unflushed < WRITEBACK_BYTES) return;
    sync_file_range(f->fd, 0, 0, SYNC_FILE_RANGE_WRITE); /* a hint: failures show at fsync */
    f->unflushed = 0;
}

rd_status rd_h5_write_rows(rd_h5file *f, const char *name, rd_h5_type type, int64_t row0,
                           int64_t nrows, const void *buf, rd_error *err) {
    rd_status st = RD_OK;
    size_t bytes = 0;
    if (!f->writing)
        st = rd_fail(err, RD_EINVAL, "%s: %s: not open for writing", f->path, name);
    else if (type == RD_H5_STRING)
        st = rd_fail(err, RD_EINVAL, "%s: %s: use rd_h5_write_strings", f->path, name);
    else
        st = transfer_rows(f, name, native_type(type), row0, nrows, (void *)buf, 1, &bytes, err);
    if (!st) start_writeback(f, bytes);
    return rd_agree(f->comm, st, err);
}

rd_status rd_h5_read_rows(const rd_h5file *f, const char *name, rd_h5_type type, int64_t row0,
                          int64_t nrows, void *buf, rd_error *err) {
    if (type == RD_H5_STRING)
        return rd_fail(err, RD_EINVAL, "%s: %s: use rd_h5_read_strings", f->path, name);
    return transfer_rows(f, name, native_type(type), row0, nrows, buf, 0, NULL, err);
}

rd_status rd_h5_shape(const rd_h5file *f, const char *name, int64_t *dims, int *ndim,
                      size_t *string_width, rd_error *err) {
    open_dataset d;
    rd_status st = open_rows(f, name, 0, 0, &d, err);
    if (st) return st;
    *ndim = d.ndim;
    for (int i = 0; i < d.ndim; i++) dims[i] = (int64_t)d.dims[i];
    if (string_width) {
        hid_t t = H5Dget_type(d.ds);
        *string_width =
            t >= 0 && H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t) ? H5Tget_size(t) : 0;
        if (t >= 0) H5Tclose(t);
    }
    close_dataset(&d);
    return RD_OK;
}

rd_status rd_h5_dataset_type(const rd_h5file *f, const char *name, rd_h5_type *type,
                             rd_error *err) {
    open_dataset d;
    rd_status st = open_rows(f, name, 0, 0, &d, err);
    if (st) return st;
    hid_t t = H5Dget_type(d.ds);
    H5T_class_t cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    size_t size = t >= 0 ? H5Tget_size(t) : 0;
    int is_signed = cls == H5T_INTEGER && H5Tget_sign(t) == H5T_SGN_2;
    if (t >= 0) H5Tclose(t);
    close_dataset(&d);
    st = RD_OK;
    if (cls == H5T_STRING)
        *type = RD_H5_STRING;
    else if (cls == H5T_FLOAT && size == 4)
        *type = RD_H5_F32;
    else if (cls == H5T_FLOAT && size == 8)
        *type = RD_H5_F64;
    else if (cls == H5T_INTEGER && size == 1)
        *type = is_signed ? RD_H5_I8 : RD_H5_U8;
    else if (cls == H5T_INTEGER && size == 2 && !is_signed)
        *type = RD_H5_U16;
    else if (cls == H5T_INTEGER && size == 4)
        *type = is_signed ? RD_H5_I32 : RD_H5_U32;
    else if (cls == H5T_INTEGER && size == 8 && is_signed)
        *type = RD_H5_I64;
    else
        st = rd_fail(err, RD_EFORMAT, "%s: %s: unsupported element type", f->path, name);
    return st;
}

typedef struct member_list {
    const char *prefix;
    char **names;
    int n, cap, failed;
} member_list;

static herr_t add_member(hid_t group, const char *name, const H5L_info_t *info, void *data) {
    (void)group, (void)info;
    member_list *l = data;
    if (strncmp(name, l->prefix, strlen(l->prefix)) != 0) return 0;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **bigger = realloc(l->names, (size_t)cap * sizeof *bigger);
        if (!bigger) return l->failed = 1, -1;
        l->names = bigger, l->cap = cap;
    }
    if (!(l->names[l->n] = strdup(name))) return l->failed = 1, -1;
    l->n++;
    return 0;
}

rd_status rd_h5_list(const rd_h5file *f, const char *group, const char *prefix, char ***names,
                     int *n, rd_error *err) {
    member_list l = {prefix ? prefix : "", NULL, 0, 0, 0};
    *names = NULL;
    *n = 0;
    if (!rd_h5_exists(f, group)) return RD_OK;
    hid_t g = H5Gopen2(f->id, group, H5P_DEFAULT);
    herr_t it = g < 0 ? -1 : H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, add_member, &l);
    if (g >= 0) H5Gclose(g);
    rd_status st = RD_OK;
    if (l.failed)
        st = rd_fail(err, RD_ENOMEM, "%s: %s: out of memory listing its members", f->path, group);
    else if (it < 0)
        st = h5_fail(err, f, group, "cannot list the group's members");
    if (st) {
        rd_h5_names_free(l.names, l.n);
        return st;
    }
    *names = l.names;
    *n = l.n;
    return RD_OK;
}

void rd_h5_names_free(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

rd_status rd_h5_write_strings(rd_h5file *f, const char *name, int64_t row0, int64_t nrows,
                              const char *const *strs, rd_error *err) {
    size_t width = 0, bytes = 0;
    int64_t dims[RD_H5_MAX_DIMS];
    int ndim = 0;
    char *packed = NULL;
    hid_t type = H5I_INVALID_HID;
    rd_status st =
        f->writing ? RD_OK : rd_fail(err, RD_EINVAL, "%s: %s: not open for writing", f->path, name);
    if (!st) st = rd_h5_shape(f, name, dims, &ndim, &width, err);
    if (!st && width == 0)
        st = rd_fail(err, RD_EFORMAT, "%s: %s: not a fixed-length string dataset", f->path, name);
    if (!st && !(packed = calloc((size_t)(nrows > 0 ? nrows : 1), width)))
        st = rd_fail(err, RD_ENOMEM, "%s: %s: out of memory", f->path, name);
    for (int64_t i = 0; !st && i < nrows; i++) {
        size_t len = strlen(strs[i]);
        if (len > width)
            st = rd_fail(err, RD_ERANGE, "%s: %s: string '%s' longer than the width %zu", f->path,
                         name, strs[i], width);
        else
            memcpy(packed + (size_t)i * width, strs[i], len);
    }
    if (!st && (type = string_type(width)) < 0)
        st = h5_fail(err, f, name, "cannot make a string type");
    if (!st) st = transfer_rows(f, name, type, row0, nrows, packed, 1, &bytes, err);
    if (!st) start_writeback(f, bytes);
    if (type >= 0) H5Tclose(type);
    free(packed);
    return rd_agree(f->comm, st, err);
}

rd_status rd_h5_read_strings(const rd_h5file *f, const char *name, int64_t row0, int64_t nrows,
                             char *out, size_t stride, rd_error *err) {
    size_t width = 0;
    int64_t dims[RD_H5_MAX_DIMS];
    int ndim = 0;
    rd_status st = rd_h5_shape(f, name, dims, &ndim, &width, err);
    if (st) return st;
    if (width == 0)
        return rd_fail(err, RD_EFORMAT, "%s: %s: not a fixed-length string dataset", f->path, name);
    if (stride <= width)
        return rd_fail(err, RD_EINVAL, "%s: %s: stride %zu too small for strings of width %zu",
                       f->path, name, stride, width);
    char *packed = calloc((size_t)(nrows > 0 ? nrows : 1), width);
    hid_t type = string_type(width);
    if (!packed || type < 0) st = rd_fail(err, RD_ENOMEM, "%s: %s: out of memory", f->path, name);
    if (!st) st = transfer_rows(f, name, type, row0, nrows, packed, 0, NULL, err);
    for (int64_t i = 0; !st && i < nrows; i++) {
        memcpy(out + (size_t)i * stride, packed + (size_t)i * width, width);
        out[(size_t)i * stride + width] = '\0';
    }
    if (type >= 0) H5Tclose(type);
    free(packed);
    return st;
}

/* ---- attributes ---- */

static rd_status write_attr(rd_h5file *f, const char *obj, const char *name, hid_t type,
                            const void *value, rd_error *err) {
    rd_status st = RD_OK;
    hid_t space = H5Screate(H5S_SCALAR);
    if (space < 0) st = h5_fail(err, f, obj, "attribute %s: cannot make a dataspace", name);
    if (!st && H5Aexists_by_name(f->id, obj, name, H5P_DEFAULT) > 0 &&
        H5Adelete_by_name(f->id, obj, name, H5P_DEFAULT) < 0)
        st = h5_fail(err, f, obj, "attribute %s: cannot replace it", name);
    if (!st) {
        hid_t a =
            H5Acreate_by_name(f->id, obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (a < 0 || H5Awrite(a, type, value) < 0)
            st = h5_fail(err, f, obj, "cannot write attribute %s", name);
        if (a >= 0) H5Aclose(a);
    }
    if (space >= 0) H5Sclose(space);
    return rd_agree(f->comm, st, err);
}

rd_status rd_h5_set_attr_str(rd_h5file *f, const char *obj, const char *name, const char *value,
                             rd_error *err) {
    hid_t type = H5Tcopy(H5T_C_S1);
    if (type < 0 || H5Tset_size(type, H5T_VARIABLE) < 0 || H5Tset_cset(type, H5T_CSET_UTF8) < 0) {
        if (type >= 0) H5Tclose(type);
        return h5_fail(err, f, obj, "attribute %s: cannot make a string type", name);
    }
    rd_status st = write_attr(f, obj, name, type, &value, err);
    H5Tclose(type);
    return st;
}

rd_status rd_h5_set_attr_int(rd_h5file *f, const char *obj, const char *name, int64_t value,
                             rd_error *err) {
    return write_attr(f, obj, name, H5T_NATIVE_INT64, &value, err);
}

rd_status rd_h5_set_attr_float(rd_h5file *f, const char *obj, const char *name, double value,
                               rd_error *err) {
    return write_attr(f, obj, name, H5T_NATIVE_DOUBLE, &value, err);
}

static hid_t open_attr(const rd_h5file *f, const char *obj, const char *name, rd_error *err) {
    if (!rd_h5_exists(f, obj) || H5Aexists_by_name(f->id, obj, name, H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        rd_fail(err, RD_ENOTFOUND, "%s: %s: no attribute %s", f->path, obj, name);
        return H5I_INVALID_HID;
    }
    hid_t a = H5Aopen_by_name(f->id, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) h5_fail(err, f, obj, "cannot open attribute %s", name);
    return a;
}

static rd_status read_attr(const rd_h5file *f, const char *obj, const char *name, hid_t type,
                           void *value, rd_error *err) {
    hid_t a = open_attr(f, obj, name, err);
    if (a < 0) return err ? err->code : RD_EHDF5;
    rd_status st = H5Aread(a, type, value) < 0
                       ? h5_fail(err, f, obj, "cannot read attribute %s as a number", name)
                       : RD_OK;
    H5Aclose(a);
    return st;
}

rd_status rd_h5_get_attr_int(const rd_h5file *f, const char *obj, const char *name, int64_t *value,
                             rd_error *err) {
    return read_attr(f, obj, name, H5T_NATIVE_INT64, value, err);
}

rd_status rd_h5_get_attr_float(const rd_h5file *f, const char *obj, const char *name, double *value,
                               rd_error *err) {
    return read_attr(f, obj, name, H5T_NATIVE_DOUBLE, value, err);
}

rd_status rd_h5_get_attr_str(const rd_h5file *f, const char *obj, const char *name, char **value,
                             rd_error *err) {
    *value = NULL;
    hid_t a = open_attr(f, obj, name, err);
    if (a < 0) return err ? err->code : RD_EHDF5;
    rd_status st = RD_OK;
    hid_t ftype = H5Aget_type(a);
    hid_t mem = H5Tcopy(H5T_C_S1);
    if (ftype < 0 || mem < 0 || H5Tget_class(ftype) != H5T_STRING) {
        st = rd_fail(err, RD_EFORMAT, "%s: %s: attribute %s is not a string", f->path, obj, name);
    } else if (H5Tset_cset(mem, H5Tget_cset(ftype)) < 0) {
        st = h5_fail(err, f, obj, "attribute %s: unknown character set", name);
    } else if (H5Tis_variable_str(ftype) > 0) {
        char *s = NULL;
        if (H5Tset_size(mem, H5T_VARIABLE) < 0 || H5Aread(a, mem, &s) < 0 || !s)
            st = h5_fail(err, f, obj, "cannot read attribute %s", name);
        else if (!(*value = strdup(s)))
            st = rd_fail(err, RD_ENOMEM, "%s: attribute %s: out of memory", f->path, name);
        if (s) H5free_memory(s);
    } else {
        size_t size = H5Tget_size(ftype);
        *value = calloc(size + 1, 1);
        if (!*value)
            st = rd_fail(err, RD_ENOMEM, "%s: attribute %s: out of memory", f->path, name);
        else if (H5Tset_size(mem, size) < 0 || H5Aread(a, mem, *value) < 0)
            st = h5_fail(err, f, obj, "cannot read attribute %s", name);
    }
    if (st) free(*value), *value = NULL;
    if (mem >= 0) H5Tclose(mem);
    if (ftype >= 0) H5Tclose(ftype);
    H5Aclose(a);
    return st;
}
