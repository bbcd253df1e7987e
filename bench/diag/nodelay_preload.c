/* Diagnostic LD_PRELOAD shim: sets TCP_NODELAY on every accepted socket.
 * Used by `NODELAY_PRELOAD=1 bench/run.sh` to show how much of the gateway's
 * added latency is Nagle's algorithm meeting the client's delayed ACKs on the
 * gateway's downstream connections (axum::serve leaves Nagle on).
 * Build: gcc -O2 -shared -fPIC -o nodelay_preload.so nodelay_preload.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void nodelay(int fd) {
    int one = 1;
    if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int accept(int s, struct sockaddr *a, socklen_t *l) {
    static int (*real)(int, struct sockaddr *, socklen_t *);
    if (!real) real = dlsym(RTLD_NEXT, "accept");
    int fd = real(s, a, l);
    nodelay(fd);
    return fd;
}

int accept4(int s, struct sockaddr *a, socklen_t *l, int flags) {
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real) real = dlsym(RTLD_NEXT, "accept4");
    int fd = real(s, a, l, flags);
    nodelay(fd);
    return fd;
}
