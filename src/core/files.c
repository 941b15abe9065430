/* files.c -- whole-file reads, memory maps and paths. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int ds8b__read_file(const char *path, size_t max_bytes, int cat, char **out, size_t *len,
                    ds8b__err *e) {
    *out = NULL;
    if (len) *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return ds8b__seterr(e, DS8B_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ds8b__seterr(e, DS8B_E_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        close(fd);
        return ds8b__seterr(e, DS8B_E_LIMIT, "%s: file is %lld bytes, more than the %zu allowed",
                            path, (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = ds8b__malloc(cat, n + 1);
    if (!buf) {
        close(fd);
        return ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot allocate %zu bytes", path, n + 1);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int err = errno;
            close(fd);
            ds8b__free(buf);
            return ds8b__seterr(e, DS8B_E_IO, "%s: read failed at byte %zu: %s", path, got,
                                r == 0 ? "unexpected end of file" : strerror(err));
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return DS8B_OK;
}

int ds8b__mmap_open(const char *path, ds8b__mmap *m, ds8b__err *e) {
    m->addr = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return ds8b__seterr(e, DS8B_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ds8b__seterr(e, DS8B_E_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return ds8b__seterr(e, DS8B_E_FORMAT, "%s: file is empty", path);
    }
    void *a = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (a == MAP_FAILED) return ds8b__seterr(e, DS8B_E_IO, "%s: mmap failed: %s", path, strerror(err));
    m->addr = a;
    m->size = (size_t)st.st_size;
    ds8b__mem_mapped_add((int64_t)m->size);
    return DS8B_OK;
}

void ds8b__mmap_close(ds8b__mmap *m) {
    if (m && m->addr) {
        munmap(m->addr, m->size);
        ds8b__mem_mapped_add(-(int64_t)m->size);
        m->addr = NULL;
        m->size = 0;
    }
}

char *ds8b__path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = ds8b__malloc(DS8B_MEM_OTHER, a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (k && p[k - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

bool ds8b__is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool ds8b__file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}
