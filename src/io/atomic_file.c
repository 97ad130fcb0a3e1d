#include "io/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"

#define TMP_SUFFIX ".tmp.XXXXXX"

static mt_status io_fail(const char *what, const char *path) {
    return mt_fail(MT_ERR_IO, "%s %s: %s", what, path, strerror(errno));
}

mt_status mt_atomic_open(mt_atomic_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->fd = -1;
    size_t n = strlen(path);
    f->path = mt_strdup(path);
    f->tmp = f->path ? malloc(n + sizeof TMP_SUFFIX) : NULL;
    if (!f->tmp) {
        free(f->path);
        f->path = NULL;
        return mt_fail(MT_ERR_NOMEM, "out of memory writing %s", path);
    }
    memcpy(f->tmp, path, n);
    memcpy(f->tmp + n, TMP_SUFFIX, sizeof TMP_SUFFIX);
    f->fd = mkostemp(f->tmp, O_CLOEXEC);
    if (f->fd < 0) {
        mt_status st = io_fail("cannot create a temporary file for", path);
        free(f->tmp);
        free(f->path);
        f->tmp = f->path = NULL;
        return st;
    }
    return MT_OK;
}

mt_status mt_atomic_write(mt_atomic_file *f, const void *data, size_t len) {
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t put = write(f->fd, p, len);
        if (put < 0 && errno == EINTR) continue;
        if (put < 0) return io_fail("cannot write", f->tmp);
        p += put;
        len -= (size_t)put;
        f->written += (uint64_t)put;
    }
    return MT_OK;
}

mt_status mt_atomic_pad(mt_atomic_file *f, uint64_t align) {
    static const uint8_t zeros[256];
    uint64_t rem = f->written % align;
    uint64_t need = rem ? align - rem : 0;
    while (need > 0) {
        size_t chunk = need < sizeof zeros ? (size_t)need : sizeof zeros;
        mt_status st = mt_atomic_write(f, zeros, chunk);
        if (st) return st;
        need -= chunk;
    }
    return MT_OK;
}

/* New files get the mode an existing target had, else rw-r--r--, as mkstemp's 0600
 * would hide a model from other users. */
static mode_t target_mode(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (sb.st_mode & 07777) : 0644;
}

/* Syncs the folder holding path so the rename itself survives a crash. */
static mt_status sync_parent(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? mt_strndup(path, slash == path ? 1 : (size_t)(slash - path)) : NULL;
    if (slash && !dir) return MT_ERR_NOMEM;
    const char *d = dir ? dir : ".";
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    mt_status st = MT_OK;
    if (fd < 0 || fsync(fd) != 0) st = io_fail("cannot sync folder", d);
    if (fd >= 0) close(fd);
    free(dir);
    return st;
}

static void release(mt_atomic_file *f) {
    free(f->tmp);
    free(f->path);
    f->tmp = f->path = NULL;
    f->fd = -1;
}

mt_status mt_atomic_commit(mt_atomic_file *f) {
    mt_status st = MT_OK;
    if (fchmod(f->fd, target_mode(f->path)) != 0) st = io_fail("cannot set mode of", f->tmp);
    if (!st && fsync(f->fd) != 0) st = io_fail("cannot sync", f->tmp);
    if (close(f->fd) != 0 && !st) st = io_fail("cannot close", f->tmp);
    if (!st && rename(f->tmp, f->path) != 0) st = io_fail("cannot rename into", f->path);
    if (st) unlink(f->tmp);
    if (!st) st = sync_parent(f->path);
    release(f);
    return st;
}

void mt_atomic_abort(mt_atomic_file *f) {
    if (f->tmp) {
        close(f->fd);
        unlink(f->tmp);
    }
    release(f);
}
