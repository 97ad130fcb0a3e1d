#include "io/atomic_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/fault.h"

#define TMP_MARK ".tmp."
#define TMP_RAND 6 /* mkstemp's XXXXXX */
#define TMP_SUFFIX TMP_MARK "XXXXXX"

static mt_status io_fail(const char *what, const char *path) {
    return mt_fail(MT_ERR_IO, "%s %s: %s", what, path, strerror(errno));
}

static int is_mkstemp_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int mt_atomic_is_temp_name(const char *name, const char *base) {
    const size_t n = strlen(name), mark = sizeof TMP_MARK - 1;
    if (n <= mark + TMP_RAND) return 0;
    const size_t n_base = n - mark - TMP_RAND;
    if (base && (strlen(base) != n_base || memcmp(name, base, n_base))) return 0;
    if (memcmp(name + n_base, TMP_MARK, mark)) return 0;
    for (size_t i = n - TMP_RAND; i < n; i++)
        if (!is_mkstemp_char(name[i])) return 0;
    return 1;
}

/* Opens the folder holding path, read-only (for flock, fsync and the *at calls); -1 if it
 * cannot be opened. *base points at path's last component. */
static int open_parent(const char *path, const char **base) {
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    char *dir = slash ? mt_strndup(path, slash == path ? 1 : (size_t)(slash - path)) : NULL;
    if (slash && !dir) return -1;
    int fd = open(dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    return fd;
}

static int lock_dir(int fd, int op) {
    int r;
    while ((r = flock(fd, op)) != 0 && errno == EINTR) {
    }
    return r;
}

/* Removes the temporaries of target base (NULL: of any target) in the folder dir_fd,
 * whose exclusive lock the caller holds. Only regular files, never what a link points
 * to. */
static int remove_temps(int dir_fd, const char *base) {
    int fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        return 0;
    }
    rewinddir(d);
    int removed = 0;
    for (struct dirent *e; (e = readdir(d));) {
        struct stat sb;
        if (!mt_atomic_is_temp_name(e->d_name, base) ||
            fstatat(dir_fd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode))
            continue;
        removed += unlinkat(dir_fd, e->d_name, 0) == 0;
    }
    closedir(d); /* the lock belongs to dir_fd's open file, which stays open */
    return removed;
}

/* Removes leftovers in dir_fd if no writer holds the folder; closes dir_fd. */
static int clean_and_close(int dir_fd, const char *base) {
    int removed = 0;
    if (lock_dir(dir_fd, LOCK_EX | LOCK_NB) == 0) removed = remove_temps(dir_fd, base);
    close(dir_fd); /* drops the lock */
    return removed;
}

int mt_atomic_clean_stale(const char *path) {
    const char *base;
    int fd = open_parent(path, &base);
    if (fd < 0) return 0;
    if (!*base) {
        close(fd);
        return 0;
    }
    return clean_and_close(fd, base);
}

int mt_atomic_clean_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd < 0 ? 0 : clean_and_close(fd, NULL);
}

/* Takes the folder's shared lock for this write, first removing the target's leftovers if
 * the exclusive lock is free. Without a lock (the folder cannot be opened, or its file
 * system has no flock) the write goes ahead and removes nothing. */
static void lock_folder(mt_atomic_file *f) {
    const char *base;
    f->dir_fd = open_parent(f->path, &base);
    if (f->dir_fd < 0) return;
    if (*base && lock_dir(f->dir_fd, LOCK_EX | LOCK_NB) == 0) remove_temps(f->dir_fd, base);
    /* converts an exclusive lock taken above, else waits out another's cleaning */
    (void)lock_dir(f->dir_fd, LOCK_SH);
}

mt_status mt_atomic_open(mt_atomic_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->fd = f->dir_fd = -1;
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
    lock_folder(f);
    f->fd = mkostemp(f->tmp, O_CLOEXEC);
    if (f->fd < 0) {
        mt_status st = io_fail("cannot create a temporary file for", path);
        if (f->dir_fd >= 0) close(f->dir_fd);
        free(f->tmp);
        free(f->path);
        f->tmp = f->path = NULL;
        f->dir_fd = -1;
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

/* Syncs the folder holding the target so the rename itself survives a crash. */
static mt_status sync_parent(const mt_atomic_file *f) {
    if (f->dir_fd >= 0)
        return fsync(f->dir_fd) == 0 ? MT_OK : io_fail("cannot sync the folder of", f->path);
    const char *base;
    int fd = open_parent(f->path, &base);
    mt_status st = MT_OK;
    if (fd < 0 || fsync(fd) != 0) st = io_fail("cannot sync the folder of", f->path);
    if (fd >= 0) close(fd);
    return st;
}

/* Closing the folder drops its lock, after the temporary is renamed or removed. A file
 * never opened (zeroed, path NULL) has no folder open. */
static void release(mt_atomic_file *f) {
    if (f->path && f->dir_fd >= 0) close(f->dir_fd);
    free(f->tmp);
    free(f->path);
    f->tmp = f->path = NULL;
    f->fd = f->dir_fd = -1;
}

mt_status mt_atomic_commit(mt_atomic_file *f) {
    mt_status st = MT_OK;
    if (fchmod(f->fd, target_mode(f->path)) != 0) st = io_fail("cannot set mode of", f->tmp);
    if (!st && fsync(f->fd) != 0) st = io_fail("cannot sync", f->tmp);
    /* crash tests: killed here, a complete temporary is left beside the old target */
    if (!st) mt_fault_point("atomic_written");
    if (close(f->fd) != 0 && !st) st = io_fail("cannot close", f->tmp);
    if (!st && rename(f->tmp, f->path) != 0) st = io_fail("cannot rename into", f->path);
    if (st) unlink(f->tmp);
    if (!st) st = sync_parent(f);
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
