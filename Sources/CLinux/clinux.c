#include "clinux.h"
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <limits.h>
#include <sched.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <liburing.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <errno.h>
#include <string.h>
#include <sys/vfs.h>

const int CLinux_O_PATH = O_PATH;
const int CLinux_O_DIRECTORY = O_DIRECTORY;
const int CLinux_O_NOFOLLOW = O_NOFOLLOW;
const int CLinux_O_NOATIME = O_NOATIME;
const int CLinux_O_CLOEXEC = O_CLOEXEC;
const int CLinux_AT_EMPTY_PATH = AT_EMPTY_PATH;
const int CLinux_AT_SYMLINK_NOFOLLOW = AT_SYMLINK_NOFOLLOW;
const unsigned int CLinux_RENAME_NOREPLACE = RENAME_NOREPLACE;
const unsigned int CLinux_RENAME_EXCHANGE = RENAME_EXCHANGE;
const unsigned int CLinux_RENAME_WHITEOUT = RENAME_WHITEOUT;
const int CLinux_SEEK_DATA = SEEK_DATA;
const int CLinux_SEEK_HOLE = SEEK_HOLE;
const long CLinux_UTIME_OMIT = UTIME_OMIT;
const unsigned long long CLinux_RESOLVE_BENEATH = RESOLVE_BENEATH;
const unsigned long long CLinux_RESOLVE_NO_SYMLINKS = RESOLVE_NO_SYMLINKS;
const unsigned long long CLinux_RESOLVE_NO_MAGICLINKS = RESOLVE_NO_MAGICLINKS;
const int CLinux_NAME_MAX = NAME_MAX;
const int CLinux_PATH_MAX = PATH_MAX;

int CLinux_openat2(int dirfd, const char *path, int flags, unsigned int mode, unsigned long long resolve) {
    struct open_how how = { .flags = (unsigned long long)flags, .mode = mode, .resolve = resolve };
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

// Not in Debian 12's headers: Linux 6.6's fchmodat2 (the same number on every architecture), which takes
// AT_SYMLINK_NOFOLLOW in one call where glibc 2.36 opens the name O_PATH and goes through /proc.
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
int CLinux_fchmodat2(int dirfd, const char *path, unsigned int mode, int flags) {
    return (int)syscall(SYS_fchmodat2, dirfd, path, mode, flags);
}

// Not in Debian 12's headers yet: the x86_64 and aarch64 numbers (identical on both) of Linux 6.13.
#ifndef SYS_setxattrat
#define SYS_setxattrat 463
#define SYS_getxattrat 464
#define SYS_listxattrat 465
#define SYS_removexattrat 466
#endif
struct clinux_xattr_args { unsigned long long value; unsigned int size; unsigned int flags; };

ssize_t CLinux_getxattrat(int dirfd, const char *path, int at_flags, const char *name, void *value, size_t size) {
    struct clinux_xattr_args args = { .value = (unsigned long long)(unsigned long)value, .size = (unsigned int)size };
    return syscall(SYS_getxattrat, dirfd, path, at_flags, name, &args, sizeof args);
}
ssize_t CLinux_listxattrat(int dirfd, const char *path, int at_flags, char *list, size_t size) {
    return syscall(SYS_listxattrat, dirfd, path, at_flags, list, size);
}
int CLinux_setxattrat(int dirfd, const char *path, int at_flags, const char *name, const void *value, size_t size, int flags) {
    struct clinux_xattr_args args = { .value = (unsigned long long)(unsigned long)value, .size = (unsigned int)size,
                                      .flags = (unsigned int)flags };
    return (int)syscall(SYS_setxattrat, dirfd, path, at_flags, name, &args, sizeof args);
}
int CLinux_removexattrat(int dirfd, const char *path, int at_flags, const char *name) {
    return (int)syscall(SYS_removexattrat, dirfd, path, at_flags, name);
}

int CLinux_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags) {
    return renameat2(olddirfd, oldpath, newdirfd, newpath, flags);
}

ssize_t CLinux_copy_file_range(int fd_in, int64_t *off_in, int fd_out, int64_t *off_out, size_t len, unsigned int flags) {
    return copy_file_range(fd_in, (off64_t *)off_in, fd_out, (off64_t *)off_out, len, flags);
}

ssize_t CLinux_splice(int fd_in, off_t *off_in, int fd_out, off_t *off_out, size_t len, unsigned int flags) {
    return splice(fd_in, (loff_t *)off_in, fd_out, (loff_t *)off_out, len, flags);
}

int CLinux_ficlone(int dest_fd, int src_fd) { return ioctl(dest_fd, FICLONE, src_fd); }

int CLinux_name_thread(const char *name) { return pthread_setname_np(pthread_self(), name); }

int CLinux_set_affinity(size_t size, const void *mask) { return sched_setaffinity(0, size, (const cpu_set_t *)mask); }

int CLinux_fallocate(int fd, int mode, int64_t offset, int64_t length) { return fallocate(fd, mode, offset, length); }

ssize_t CLinux_lgetxattr(const char *path, const char *name, void *value, size_t size) {
    return lgetxattr(path, name, value, size);
}
ssize_t CLinux_llistxattr(const char *path, char *list, size_t size) { return llistxattr(path, list, size); }
int CLinux_lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags) {
    return lsetxattr(path, name, value, size, flags);
}
int CLinux_lremovexattr(const char *path, const char *name) { return lremovexattr(path, name); }
ssize_t CLinux_fgetxattr(int fd, const char *name, void *value, size_t size) {
    return fgetxattr(fd, name, value, size);
}
ssize_t CLinux_flistxattr(int fd, char *list, size_t size) { return flistxattr(fd, list, size); }
int CLinux_fsetxattr(int fd, const char *name, const void *value, size_t size, int flags) {
    return fsetxattr(fd, name, value, size, flags);
}
int CLinux_fremovexattr(int fd, const char *name) { return fremovexattr(fd, name); }

dev_t CLinux_makedev(unsigned int major, unsigned int minor) { return makedev(major, minor); }
unsigned int CLinux_major(dev_t dev) { return major(dev); }
unsigned int CLinux_minor(dev_t dev) { return minor(dev); }

ssize_t CLinux_getdents64(int fd, void *buffer, size_t length) { return getdents64(fd, buffer, length); }
const size_t CLinux_DIRENT64_INO = offsetof(struct dirent64, d_ino);
const size_t CLinux_DIRENT64_RECLEN = offsetof(struct dirent64, d_reclen);
const size_t CLinux_DIRENT64_TYPE = offsetof(struct dirent64, d_type);
const size_t CLinux_DIRENT64_NAME = offsetof(struct dirent64, d_name);

int CLinux_name_to_handle(int dirfd, const char *name, int *type, unsigned char *handle, unsigned int capacity,
                          unsigned int *length) {
    struct {
        struct file_handle header;
        unsigned char bytes[MAX_HANDLE_SZ];
    } buffer;
    int mount_id;
    buffer.header.handle_bytes = MAX_HANDLE_SZ;
    if (name_to_handle_at(dirfd, name, &buffer.header, &mount_id, 0) != 0) return -1;
    if (buffer.header.handle_bytes > capacity) {
        errno = EOVERFLOW;
        return -1;
    }
    memcpy(handle, buffer.header.f_handle, buffer.header.handle_bytes);
    *type = buffer.header.handle_type;
    *length = buffer.header.handle_bytes;
    return 0;
}

// FS_IOC_GETFSUUID and struct fsuuid2 arrived in Linux 6.5, after Debian 12's headers.
struct clinux_fsuuid2 { unsigned char len; unsigned char uuid[16]; };
#define CLINUX_FS_IOC_GETFSUUID _IOR(0x15, 0, struct clinux_fsuuid2)

int CLinux_filesystem_uuid(int fd, unsigned char *uuid, unsigned int *length) {
    struct clinux_fsuuid2 answer = { 0 };
    if (ioctl(fd, CLINUX_FS_IOC_GETFSUUID, &answer) != 0) return -1;
    if (answer.len > 16) answer.len = 16;
    memcpy(uuid, answer.uuid, answer.len);
    *length = answer.len;
    return 0;
}

const unsigned int CLinux_FAN_INIT_FLAGS = FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_DFID_NAME;
const uint64_t CLinux_FAN_EVENTS = FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO | FAN_MODIFY | FAN_ATTRIB
                                   | FAN_CLOSE_WRITE | FAN_ONDIR | FAN_EVENT_ON_CHILD;
const unsigned int CLinux_FAN_MARK_FILESYSTEM_ADD = FAN_MARK_ADD | FAN_MARK_FILESYSTEM;
const unsigned char CLinux_FAN_EVENT_INFO_TYPE_DFID_NAME = FAN_EVENT_INFO_TYPE_DFID_NAME;
const uint64_t CLinux_FAN_Q_OVERFLOW = FAN_Q_OVERFLOW;
const uint32_t CLinux_IN_EVENTS = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_MODIFY | IN_ATTRIB
                                  | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
const uint32_t CLinux_IN_Q_OVERFLOW = IN_Q_OVERFLOW;
const uint32_t CLinux_IN_IGNORED = IN_IGNORED;

int CLinux_fanotify_init(void) { return fanotify_init(CLinux_FAN_INIT_FLAGS, O_RDONLY | O_CLOEXEC); }

int CLinux_fanotify_mark_filesystem(int fd, const char *path) {
    return fanotify_mark(fd, CLinux_FAN_MARK_FILESYSTEM_ADD, CLinux_FAN_EVENTS, AT_FDCWD, path);
}

int CLinux_open_by_handle(int mount_fd, int type, const unsigned char *handle, unsigned int length) {
    struct {
        struct file_handle header;
        unsigned char bytes[MAX_HANDLE_SZ];
    } buffer;
    if (length > MAX_HANDLE_SZ) {
        errno = EOVERFLOW;
        return -1;
    }
    buffer.header.handle_bytes = length;
    buffer.header.handle_type = type;
    memcpy(buffer.header.f_handle, handle, length);
    return open_by_handle_at(mount_fd, &buffer.header, O_PATH | O_CLOEXEC);
}

int CLinux_filesystem_id(int fd, uint64_t *id) {
    struct statfs buffer;
    if (fstatfs(fd, &buffer) != 0) return -1;
    uint32_t words[2];
    memcpy(words, &buffer.f_fsid, sizeof words);
    *id = (uint64_t)words[0] | (uint64_t)words[1] << 32;
    return 0;
}

_Static_assert(__builtin_offsetof(struct CLinux_fuse_uring_req_header, op_in) == CLinux_FUSE_URING_OP_IN_OFFSET, "op_in");
_Static_assert(__builtin_offsetof(struct CLinux_fuse_uring_req_header, ring_ent_in_out) == CLinux_FUSE_URING_ENTRY_OFFSET,
               "ring_ent_in_out");

struct CLinux_fuse_uring_cmd_req {
    uint64_t flags;
    uint64_t commit_id;
    uint16_t qid;
    uint8_t padding[6];
};

void *CLinux_ring_create(unsigned int entries) {
    struct io_uring *ring = calloc(1, sizeof *ring);
    if (!ring) return NULL;
    struct io_uring_params params = { .flags = IORING_SETUP_SQE128 };
    int made = io_uring_queue_init_params(entries, ring, &params);
    if (made < 0) {
        free(ring);
        errno = -made;
        return NULL;
    }
    return ring;
}

void CLinux_ring_destroy(void *ring) {
    io_uring_queue_exit(ring);
    free(ring);
}

int CLinux_ring_fuse_command(void *ring, int fd, unsigned int command, const struct iovec *buffers, unsigned int count,
                             uint16_t queue, uint64_t commit_id, uint64_t user_data) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (!sqe) return -EBUSY;
    memset(sqe, 0, 128);
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = fd;
    sqe->cmd_op = command;
    sqe->addr = (uint64_t)(uintptr_t)buffers;
    sqe->len = count;
    struct CLinux_fuse_uring_cmd_req *request = (struct CLinux_fuse_uring_cmd_req *)sqe->cmd;
    request->qid = queue;
    request->commit_id = commit_id;
    sqe->user_data = user_data;
    int submitted = io_uring_submit(ring);
    return submitted < 0 ? submitted : 0;
}

int CLinux_ring_poll(void *ring, int fd, uint64_t user_data) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (!sqe) return -EBUSY;
    io_uring_prep_poll_add(sqe, fd, POLLIN);
    sqe->user_data = user_data;
    int submitted = io_uring_submit(ring);
    return submitted < 0 ? submitted : 0;
}

int CLinux_ring_wait(void *ring, int32_t *result, uint64_t *user_data) {
    struct io_uring_cqe *cqe = NULL;
    int waited = io_uring_wait_cqe(ring, &cqe);
    if (waited < 0) return waited;
    *result = cqe->res;
    *user_data = cqe->user_data;
    io_uring_cqe_seen(ring, cqe);
    return 0;
}
