#include "clinux.h"
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <linux/fs.h>

const int CLinux_O_PATH = O_PATH;
const int CLinux_O_DIRECTORY = O_DIRECTORY;
const int CLinux_O_NOFOLLOW = O_NOFOLLOW;
const int CLinux_O_CLOEXEC = O_CLOEXEC;
const int CLinux_AT_EMPTY_PATH = AT_EMPTY_PATH;
const int CLinux_AT_SYMLINK_NOFOLLOW = AT_SYMLINK_NOFOLLOW;
const unsigned int CLinux_RENAME_NOREPLACE = RENAME_NOREPLACE;
const unsigned int CLinux_RENAME_EXCHANGE = RENAME_EXCHANGE;
const unsigned int CLinux_RENAME_WHITEOUT = RENAME_WHITEOUT;
const int CLinux_SEEK_DATA = SEEK_DATA;
const int CLinux_SEEK_HOLE = SEEK_HOLE;
const long CLinux_UTIME_OMIT = UTIME_OMIT;

int CLinux_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags) {
    return renameat2(olddirfd, oldpath, newdirfd, newpath, flags);
}

ssize_t CLinux_copy_file_range(int fd_in, int64_t *off_in, int fd_out, int64_t *off_out, size_t len, unsigned int flags) {
    return copy_file_range(fd_in, (off64_t *)off_in, fd_out, (off64_t *)off_out, len, flags);
}

int CLinux_ficlone(int dest_fd, int src_fd) { return ioctl(dest_fd, FICLONE, src_fd); }

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

const char *CLinux_dirent_name(const struct dirent *entry) { return entry->d_name; }
