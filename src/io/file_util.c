#include "io/file_util.h"

#include "io/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"

static mt_status io_fail(const char *what, const char *path) {
    return mt_fail(MT_ERR_IO, "%s %s: %s", what, path, strerror(errno));
}

/* Reads until EOF rather than trusting st_size, so pipes and /proc files work too. */
static mt_status read_all(int fd, const char *path, char **data, size_t *len, size_t hint) {
    size_t cap = hint + 2 > 4096 ? hint + 2 : 4096, n = 0; /* room for EOF probe + NUL */
    char *buf = malloc(cap);
    if (!buf) return mt_fail(MT_ERR_NOMEM, "out of memory reading %s", path);
    for (;;) {
        if (n + 1 >= cap) {
            char *bigger = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                return mt_fail(MT_ERR_NOMEM, "out of memory reading %s", path);
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + n, cap - 1 - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            free(buf);
            return io_fail("cannot read", path);
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return MT_OK;
}

mt_status mt_read_file(const char *path, char **data, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return io_fail("cannot open", path);
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        mt_status st = io_fail("cannot stat", path);
        close(fd);
        return st;
    }
    if (S_ISDIR(sb.st_mode)) {
        close(fd);
        return mt_fail(MT_ERR_IO, "cannot read %s: it is a directory", path);
    }
    mt_status st = read_all(fd, path, data, len, S_ISREG(sb.st_mode) ? (size_t)sb.st_size : 0);
    close(fd);
    return st;
}

mt_status mt_write_file_atomic(const char *path, const void *data, size_t len) {
    mt_atomic_file f;
    mt_status st = mt_atomic_open(&f, path);
    if (st) return st;
    if ((st = mt_atomic_write(&f, data, len))) {
        mt_atomic_abort(&f);
        return st;
    }
    return mt_atomic_commit(&f);
}

mt_status mt_map_file(const char *path, const void **data, size_t *size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return io_fail("cannot open", path);
    struct stat sb;
    mt_status st = MT_OK;
    if (fstat(fd, &sb) != 0)
        st = io_fail("cannot stat", path);
    else if (!S_ISREG(sb.st_mode))
        st = mt_fail(MT_ERR_IO, "%s is not a regular file", path);
    *data = NULL;
    *size = 0;
    if (!st && sb.st_size > 0) {
        void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED)
            st = io_fail("cannot map", path);
        else {
            *data = map;
            *size = (size_t)sb.st_size;
        }
    }
    close(fd);
    return st;
}

void mt_unmap_file(const void *data, size_t size) {
    if (data) munmap((void *)data, size);
}

void mt_map_release(const void *p, size_t n) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t a = ((uintptr_t)p + page - 1) / page * page,
                    b = ((uintptr_t)p + n) / page * page;
    /* only advice: a failure leaves the pages resident, which costs memory, not data */
    if (a < b) (void)madvise((void *)a, b - a, MADV_DONTNEED);
}

int mt_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}
