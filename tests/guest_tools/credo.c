/* credo: run file operations in the test guest with exact credentials.
 *
 *   credo UID GID GROUPS OP ARGS... [, OP ARGS...]...
 *
 * GROUPS is a comma-separated list of supplementary groups, or "-" for none. credo calls
 * setgroups, setresgid and setresuid (so fsuid/fsgid follow), then runs each operation in turn and
 * prints one line per operation: "OP OK" or "OP ENAME". Operations on the current descriptor
 * (the last "open") let a test reproduce open-then-ftruncate and similar sequences.
 *
 * Path operations: open PATH FLAGS [MODE] (FLAGS: letters r w c t x a: read, write, O_CREAT,
 * O_TRUNC, O_EXCL, O_APPEND), chown PATH UID GID, chmod PATH MODE, mkdir PATH MODE,
 * mkfifo PATH MODE, mknod PATH MODE (a fifo through mknod(2)), truncate PATH SIZE, unlink PATH,
 * rmdir PATH, rename OLD NEW, link OLD NEW, symlink TARGET PATH, utime PATH now|SECONDS,
 * stat PATH (prints "stat UID GID MODE" in octal), setxattr PATH NAME VALUE, getxattr PATH NAME.
 * Descriptor operations: ftruncate SIZE, write TEXT, fchmod MODE, fchown UID GID, close.
 * The guest tests compare these lines between our 9p root and the guest's own tmpfs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

static const struct { int code; const char *name; } ERRNOS[] = {
    {EPERM, "EPERM"}, {ENOENT, "ENOENT"}, {EIO, "EIO"}, {EBADF, "EBADF"}, {EAGAIN, "EAGAIN"},
    {EACCES, "EACCES"}, {EEXIST, "EEXIST"}, {EXDEV, "EXDEV"}, {ENOTDIR, "ENOTDIR"},
    {EISDIR, "EISDIR"}, {EINVAL, "EINVAL"}, {EFBIG, "EFBIG"}, {ENOSPC, "ENOSPC"}, {EROFS, "EROFS"},
    {EMLINK, "EMLINK"}, {ERANGE, "ERANGE"}, {ENAMETOOLONG, "ENAMETOOLONG"}, {ENOTEMPTY, "ENOTEMPTY"},
    {ELOOP, "ELOOP"}, {ENODATA, "ENODATA"}, {EOPNOTSUPP, "EOPNOTSUPP"}, {EDQUOT, "EDQUOT"},
    {EBUSY, "EBUSY"}, {ETXTBSY, "ETXTBSY"},
};

static int fd = -1;

static void report(const char *op, int rc) {
    if (rc >= 0) {
        printf("%s OK\n", op);
        return;
    }
    for (size_t i = 0; i < sizeof ERRNOS / sizeof ERRNOS[0]; i++) {
        if (ERRNOS[i].code == errno) {
            printf("%s %s\n", op, ERRNOS[i].name);
            return;
        }
    }
    printf("%s E%d\n", op, errno);
}

static unsigned long num(const char *s) { return strtoul(s, NULL, 0); }
static unsigned long octal(const char *s) { return strtoul(s, NULL, 8); }
static unsigned id(const char *s) { return strcmp(s, "-1") == 0 ? (unsigned)-1 : (unsigned)num(s); }

static void usage(const char *why) {
    fprintf(stderr, "credo: %s\nusage: credo UID GID GROUPS OP ARGS... [, OP ARGS...]...\n", why);
    exit(2);
}

/* Runs one operation whose name is argv[0]; returns how many words it used. */
static int run(int argc, char **argv) {
    const char *op = argv[0];
#define NEED(n) do { if (argc < (n) + 1) usage("missing arguments"); } while (0)
    if (!strcmp(op, "open")) {
        NEED(2);
        int flags = 0, r = !!strchr(argv[2], 'r'), w = !!strchr(argv[2], 'w');
        flags = r && w ? O_RDWR : w ? O_WRONLY : O_RDONLY;
        if (strchr(argv[2], 'c')) flags |= O_CREAT;
        if (strchr(argv[2], 't')) flags |= O_TRUNC;
        if (strchr(argv[2], 'x')) flags |= O_EXCL;
        if (strchr(argv[2], 'a')) flags |= O_APPEND;
        int used = 3;
        mode_t mode = 0644;
        if (argc > 3 && argv[3][0] >= '0' && argv[3][0] <= '7') { mode = octal(argv[3]); used = 4; }
        if (fd >= 0) close(fd);
        fd = open(argv[1], flags, mode);
        report(op, fd);
        return used;
    }
    if (!strcmp(op, "chown")) { NEED(3); report(op, chown(argv[1], id(argv[2]), id(argv[3]))); return 4; }
    if (!strcmp(op, "chmod")) { NEED(2); report(op, chmod(argv[1], octal(argv[2]))); return 3; }
    if (!strcmp(op, "mkdir")) { NEED(2); report(op, mkdir(argv[1], octal(argv[2]))); return 3; }
    if (!strcmp(op, "mkfifo")) { NEED(2); report(op, mkfifo(argv[1], octal(argv[2]))); return 3; }
    if (!strcmp(op, "mknod")) { NEED(2); report(op, mknod(argv[1], S_IFIFO | octal(argv[2]), 0)); return 3; }
    if (!strcmp(op, "truncate")) { NEED(2); report(op, truncate(argv[1], num(argv[2]))); return 3; }
    if (!strcmp(op, "unlink")) { NEED(1); report(op, unlink(argv[1])); return 2; }
    if (!strcmp(op, "rmdir")) { NEED(1); report(op, rmdir(argv[1])); return 2; }
    if (!strcmp(op, "rename")) { NEED(2); report(op, rename(argv[1], argv[2])); return 3; }
    if (!strcmp(op, "link")) { NEED(2); report(op, link(argv[1], argv[2])); return 3; }
    if (!strcmp(op, "symlink")) { NEED(2); report(op, symlink(argv[1], argv[2])); return 3; }
    if (!strcmp(op, "utime")) {
        NEED(2);
        struct timespec ts[2];
        if (!strcmp(argv[2], "now")) {
            report(op, utimensat(AT_FDCWD, argv[1], NULL, 0));
        } else {
            ts[0].tv_sec = ts[1].tv_sec = (time_t)num(argv[2]);
            ts[0].tv_nsec = ts[1].tv_nsec = 0;
            report(op, utimensat(AT_FDCWD, argv[1], ts, 0));
        }
        return 3;
    }
    if (!strcmp(op, "stat")) {
        NEED(1);
        struct stat st;
        if (lstat(argv[1], &st) < 0) report(op, -1);
        else printf("stat %u %u %o\n", (unsigned)st.st_uid, (unsigned)st.st_gid, (unsigned)st.st_mode);
        return 2;
    }
    if (!strcmp(op, "setxattr")) {
        NEED(3);
        report(op, setxattr(argv[1], argv[2], argv[3], strlen(argv[3]), 0));
        return 4;
    }
    if (!strcmp(op, "getxattr")) {
        NEED(2);
        char value[256];
        report(op, (int)getxattr(argv[1], argv[2], value, sizeof value));
        return 3;
    }
    if (!strcmp(op, "ftruncate")) { NEED(1); report(op, ftruncate(fd, num(argv[1]))); return 2; }
    if (!strcmp(op, "write")) { NEED(1); report(op, (int)write(fd, argv[1], strlen(argv[1]))); return 2; }
    if (!strcmp(op, "fchmod")) { NEED(1); report(op, fchmod(fd, octal(argv[1]))); return 2; }
    if (!strcmp(op, "fchown")) { NEED(2); report(op, fchown(fd, id(argv[1]), id(argv[2]))); return 3; }
    if (!strcmp(op, "close")) { report(op, close(fd)); fd = -1; return 1; }
    usage("unknown operation");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 5) usage("too few arguments");
    uid_t uid = num(argv[1]);
    gid_t gid = num(argv[2]);
    gid_t groups[64];
    int ngroups = 0;
    if (strcmp(argv[3], "-") != 0) {
        for (char *g = strtok(argv[3], ","); g && ngroups < 64; g = strtok(NULL, ","))
            groups[ngroups++] = num(g);
    }
    if (setgroups(ngroups, groups) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0) {
        perror("credo: cannot take the credentials (run as root)");
        return 2;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    int i = 4;
    while (i < argc) {
        if (!strcmp(argv[i], ",")) { i++; continue; }
        i += run(argc - i, argv + i);
    }
    return 0;
}
