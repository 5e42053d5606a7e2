#ifndef STRATA_CLINUX_H
#define STRATA_CLINUX_H
// Linux calls and constants that sit behind _GNU_SOURCE or macros, invisible to Swift's Glibc module.
// Thin, prefixed wrappers only: no filesystem logic lives here.
#include <sys/types.h>
#include <sys/stat.h>
#include <dirent.h>
#include <stdint.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/eventfd.h>
#include <sys/uio.h>

extern const int CLinux_O_PATH;
extern const int CLinux_O_DIRECTORY;
extern const int CLinux_O_NOFOLLOW;
extern const int CLinux_O_NOATIME;
extern const int CLinux_O_CLOEXEC;
extern const int CLinux_AT_EMPTY_PATH;
extern const int CLinux_AT_SYMLINK_NOFOLLOW;
extern const unsigned int CLinux_RENAME_NOREPLACE;
extern const unsigned int CLinux_RENAME_EXCHANGE;
extern const unsigned int CLinux_RENAME_WHITEOUT;
extern const int CLinux_SEEK_DATA;
extern const int CLinux_SEEK_HOLE;
extern const long CLinux_UTIME_OMIT;
extern const unsigned long long CLinux_RESOLVE_BENEATH;
extern const unsigned long long CLinux_RESOLVE_NO_SYMLINKS;
extern const unsigned long long CLinux_RESOLVE_NO_MAGICLINKS;
extern const int CLinux_NAME_MAX;
extern const int CLinux_PATH_MAX;

/// openat2(2): `resolve` takes RESOLVE_* flags. Returns the descriptor, or -1 with errno set.
int CLinux_openat2(int dirfd, const char *path, int flags, unsigned int mode, unsigned long long resolve);

/// The *xattrat(2) calls of Linux 6.13 (name relative to `dirfd`, AT_SYMLINK_NOFOLLOW in `at_flags`);
/// -1 with errno ENOSYS on older kernels.
ssize_t CLinux_getxattrat(int dirfd, const char *path, int at_flags, const char *name, void *value, size_t size);
ssize_t CLinux_listxattrat(int dirfd, const char *path, int at_flags, char *list, size_t size);
int CLinux_setxattrat(int dirfd, const char *path, int at_flags, const char *name, const void *value, size_t size, int flags);
int CLinux_removexattrat(int dirfd, const char *path, int at_flags, const char *name);

int CLinux_fchmodat2(int dirfd, const char *path, unsigned int mode, int flags);
int CLinux_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);
ssize_t CLinux_copy_file_range(int fd_in, int64_t *off_in, int fd_out, int64_t *off_out, size_t len, unsigned int flags);
int CLinux_ficlone(int dest_fd, int src_fd);
ssize_t CLinux_splice(int fd_in, off_t *off_in, int fd_out, off_t *off_out, size_t len, unsigned int flags);
/// pthread_setname_np(3) of the calling thread (at most 15 bytes show).
int CLinux_name_thread(const char *name);
/// sched_setaffinity(2) of the calling thread; `mask` is a cpu_set_t of `size` bytes.
int CLinux_set_affinity(size_t size, const void *mask);
int CLinux_fallocate(int fd, int mode, int64_t offset, int64_t length);

ssize_t CLinux_lgetxattr(const char *path, const char *name, void *value, size_t size);
ssize_t CLinux_llistxattr(const char *path, char *list, size_t size);
int CLinux_lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags);
int CLinux_lremovexattr(const char *path, const char *name);
ssize_t CLinux_fgetxattr(int fd, const char *name, void *value, size_t size);
ssize_t CLinux_flistxattr(int fd, char *list, size_t size);
int CLinux_fsetxattr(int fd, const char *name, const void *value, size_t size, int flags);
int CLinux_fremovexattr(int fd, const char *name);

dev_t CLinux_makedev(unsigned int major, unsigned int minor);
unsigned int CLinux_major(dev_t dev);
unsigned int CLinux_minor(dev_t dev);

/// getdents64(2): `struct dirent64` records into `buffer`; the offsets of the fields read from each record.
ssize_t CLinux_getdents64(int fd, void *buffer, size_t length);
extern const size_t CLinux_DIRENT64_INO;
extern const size_t CLinux_DIRENT64_RECLEN;
extern const size_t CLinux_DIRENT64_TYPE;
extern const size_t CLinux_DIRENT64_NAME;

/// name_to_handle_at(2) for `name` in `dirfd` (never following a link there): the handle's type and bytes go to
/// `type` and `handle` (at most `capacity` bytes; `*length` says how many). -1 with errno on failure.
int CLinux_name_to_handle(int dirfd, const char *name, int *type, unsigned char *handle, unsigned int capacity,
                          unsigned int *length);

/// The UUID of the filesystem `fd` is on, as the kernel knows it (FS_IOC_GETFSUUID, Linux 6.5): `*length`
/// bytes into `uuid` (16 at most). -1 with errno where the filesystem or kernel has none.
int CLinux_filesystem_uuid(int fd, unsigned char *uuid, unsigned int *length);

/// fanotify(7), for `-o watch`: a group reporting directory handles and names, the events it asks for, and one
/// mark per filesystem. Each returns what the call does, -1 with errno on failure.
extern const unsigned int CLinux_FAN_INIT_FLAGS;
extern const uint64_t CLinux_FAN_EVENTS;
extern const unsigned int CLinux_FAN_MARK_FILESYSTEM_ADD;
extern const unsigned char CLinux_FAN_EVENT_INFO_TYPE_DFID_NAME;
extern const uint64_t CLinux_FAN_Q_OVERFLOW;
extern const uint32_t CLinux_IN_EVENTS;
extern const uint32_t CLinux_IN_Q_OVERFLOW;
extern const uint32_t CLinux_IN_IGNORED;
int CLinux_fanotify_init(void);
/// statfs(2)'s f_fsid of the filesystem `fd` is on, as fanotify reports it (its two words, first one low).
int CLinux_filesystem_id(int fd, uint64_t *id);
int CLinux_fanotify_mark_filesystem(int fd, const char *path);
/// open_by_handle_at(2) of a handle fanotify reported (type and bytes), as O_PATH, through `mount_fd` (any
/// descriptor on that filesystem).
int CLinux_open_by_handle(int mount_fd, int type, const unsigned char *handle, unsigned int length);

// FUSE over io_uring: the kernel's uapi (linux/fuse.h 7.42, Linux 6.14), which Debian 12's headers (7.38) and
// libfuse 3.14 predate, and liburing's calls for one ring, behind an opaque pointer.
#define CLinux_FUSE_OVER_IO_URING (1ULL << 41)
enum {
    CLinux_FUSE_IO_URING_CMD_REGISTER = 1,
    CLinux_FUSE_IO_URING_CMD_COMMIT_AND_FETCH = 2,
};

struct CLinux_fuse_uring_ent_in_out {
    uint64_t flags;
    uint64_t commit_id;
    uint32_t payload_sz;
    uint32_t padding;
    uint64_t reserved;
};

/// A ring entry's header buffer: the fuse_in_header (replying, the fuse_out_header), the request's per-opcode
/// header, and the entry's own fields.
struct CLinux_fuse_uring_req_header {
    char in_out[128];
    char op_in[128];
    struct CLinux_fuse_uring_ent_in_out ring_ent_in_out;
};

enum {
    CLinux_FUSE_URING_IN_OUT_OFFSET = 0,
    CLinux_FUSE_URING_OP_IN_OFFSET = 128,
    CLinux_FUSE_URING_ENTRY_OFFSET = 256,
};

/// A ring with 128-byte SQEs (the size FUSE's commands need), or NULL with errno set.
void *CLinux_ring_create(unsigned int entries);
void CLinux_ring_destroy(void *ring);
/// Submits one FUSE ring command on the device `fd`: REGISTER (with the entry's `buffers`, `count` of them)
/// or COMMIT_AND_FETCH of `commit_id`. Returns 0, or a negative errno.
int CLinux_ring_fuse_command(void *ring, int fd, unsigned int command, const struct iovec *buffers, unsigned int count,
                             uint16_t queue, uint64_t commit_id, uint64_t user_data);
/// Submits a one-shot poll for `fd` becoming readable. Returns 0, or a negative errno.
int CLinux_ring_poll(void *ring, int fd, uint64_t user_data);
/// Waits for the next completion. Returns 0 (with its result and user data), or a negative errno (EINTR).
int CLinux_ring_wait(void *ring, int32_t *result, uint64_t *user_data);
#endif
