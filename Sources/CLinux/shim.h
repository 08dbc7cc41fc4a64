// Linux calls that glibc declares only under _GNU_SOURCE, which Swift's Glibc module does not
// define: this header defines it for its own module and wraps each call under a name of ours, so
// Swift never sees two declarations of one libc function.
#ifndef PGKEEP_CLINUX_SHIM_H
#define PGKEEP_CLINUX_SHIM_H

#ifdef __linux__
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>

/// sync_file_range(2) with SYNC_FILE_RANGE_WRITE: starts writeback of the dirty pages in the
/// range without waiting for it. Returns 0 or -1 with errno set.
static inline int pgkeep_start_writeback(int fd, long long offset, long long count) {
    return sync_file_range(fd, (off64_t)offset, (off64_t)count, SYNC_FILE_RANGE_WRITE);
}

/// Turns O_DIRECT on or off for an open file (fcntl F_SETFL): writes then bypass the page
/// cache. Returns 0 or -1 with errno set (EINVAL: the file system does not support it).
static inline int pgkeep_set_direct(int fd, int on) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -1;
    flags = on ? (flags | O_DIRECT) : (flags & ~O_DIRECT);
    return fcntl(fd, F_SETFL, flags);
}

#include <sys/vfs.h>

/// statfs(2)'s f_type (the file system's magic number) for `path`, or -1 with errno set.
static inline long long pgkeep_file_system_type(const char *path) {
    struct statfs buffer;
    if (statfs(path, &buffer) != 0) return -1;
    return (long long)buffer.f_type;
}

#include <unistd.h>

/// syncfs(2): writes back everything of the file system holding fd, and waits for it.
static inline int pgkeep_syncfs(int fd) {
    return syncfs(fd);
}

#include <malloc.h>

/// mallopt(M_TRIM_THRESHOLD): free memory at the top of a heap above `bytes` goes back to the
/// system. Setting it also stops glibc from raising it (and the mmap threshold) on its own.
/// Returns 1 on success, 0 on error.
static inline int pgkeep_set_malloc_trim_threshold(int bytes) {
    return mallopt(M_TRIM_THRESHOLD, bytes);
}

/// mallopt(M_MMAP_THRESHOLD): allocations of at least `bytes` get their own mapping, returned to
/// the system when freed; smaller ones come from the heaps. Returns 1 on success, 0 on error.
static inline int pgkeep_set_malloc_mmap_threshold(int bytes) {
    return mallopt(M_MMAP_THRESHOLD, bytes);
}
#endif

#endif
