/* Paced-SSE backend in C (epoll, one thread) so the harness is not the bottleneck.
 *
 * POST (any path): 200 text/event-stream, chunked. Content chunk 0 right away, chunk k
 *   at start + k*interval, then usage chunk + "data: [DONE]" + terminator at
 *   start + chunks*interval. Keep-alive supported (the proxy pools connections).
 * GET /v1/models: JSON list with strong-model and weak-model. Other GET: {"ok":true}.
 *
 * Timers: every stream has the same interval, so a FIFO of (due, conn) stays sorted;
 * epoll_pwait2 gives sub-millisecond wake-ups.
 *
 *   ./sse_backend PORT [CHUNKS=50] [INTERVAL_MS=20]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXFD 65536
#define INBUF 16384

typedef struct {
    int alive;
    unsigned gen;
    int streaming;
    int index;
    int64_t start;
    char in[INBUF];
    int inlen;
    char *out; /* pending output when the socket was full */
    size_t outlen, outcap;
} conn_t;

typedef struct { int64_t due; int fd; unsigned gen; } item_t;

static conn_t *conns[MAXFD];
static item_t *queue; static size_t qcap, qhead, qtail; /* ring buffer */
static int epfd, nchunks = 50;
static int64_t interval_ns = 20000000;
static char **frames; static size_t *frame_len;
static char *tail_buf; static size_t tail_len;
static volatile sig_atomic_t stop_flag;
static const char STREAM_HEAD[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";
static const char MODELS[] = "{\"object\":\"list\",\"data\":[{\"id\":\"strong-model\",\"object\":\"model\",\"created\":0,\"owned_by\":\"bench\"},{\"id\":\"weak-model\",\"object\":\"model\",\"created\":0,\"owned_by\":\"bench\"}]}";

static int64_t now_ns(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec * 1000000000LL + ts.tv_nsec; }

static void push(int64_t due, int fd, unsigned gen) {
    if (qtail - qhead == qcap) { /* grow */
        size_t ncap = qcap ? qcap * 2 : 4096; item_t *nq = malloc(ncap * sizeof(item_t));
        for (size_t i = 0; i < qtail - qhead; i++) nq[i] = queue[(qhead + i) % qcap];
        qtail -= qhead; qhead = 0; free(queue); queue = nq; qcap = ncap;
    }
    queue[qtail % qcap] = (item_t){due, fd, gen}; qtail++;
}

static void close_conn(int fd) {
    conn_t *c = conns[fd];
    if (!c || !c->alive) return;
    epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    c->alive = 0; c->streaming = 0; c->gen++; c->inlen = 0; c->outlen = 0;
}

static void send_bytes(int fd, const char *p, size_t n) {
    conn_t *c = conns[fd];
    if (!c->alive) return;
    if (c->outlen == 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) { if (errno != EAGAIN) { close_conn(fd); return; } w = 0; }
        if ((size_t)w == n) return;
        p += w; n -= w;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.fd = fd};
        epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
    }
    if (c->outlen + n > c->outcap) { c->outcap = (c->outlen + n) * 2; c->out = realloc(c->out, c->outcap); }
    memcpy(c->out + c->outlen, p, n); c->outlen += n;
}

static void process(int fd) {
    conn_t *c = conns[fd];
    while (c->alive && !c->streaming) {
        c->in[c->inlen < INBUF ? c->inlen : INBUF - 1] = 0;
        char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
        if (!end) { if (c->inlen >= INBUF - 1) close_conn(fd); return; }
        int hlen = end - c->in + 4;
        long clen = 0;
        for (char *p = c->in; p < end; ) {
            char *nl = memmem(p, end - p, "\r\n", 2); if (!nl) nl = end;
            if (nl - p > 15 && strncasecmp(p, "content-length:", 15) == 0) clen = strtol(p + 15, NULL, 10);
            p = nl + 2;
        }
        if (hlen + clen > INBUF - 1) { close_conn(fd); return; }
        if (c->inlen < hlen + clen) return;
        int is_get = strncmp(c->in, "GET ", 4) == 0;
        int is_models = is_get && strncmp(c->in + 4, "/v1/models", 10) == 0;
        memmove(c->in, c->in + hlen + clen, c->inlen - hlen - clen);
        c->inlen -= hlen + clen;
        if (is_get) {
            const char *body = is_models ? MODELS : "{\"ok\":true}";
            char buf[1024];
            int n = snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
            send_bytes(fd, buf, n);
        } else {
            char buf[1024];
            memcpy(buf, STREAM_HEAD, sizeof STREAM_HEAD - 1);
            memcpy(buf + sizeof STREAM_HEAD - 1, frames[0], frame_len[0]);
            send_bytes(fd, buf, sizeof STREAM_HEAD - 1 + frame_len[0]);
            if (!c->alive) return;
            c->streaming = 1; c->index = 1; c->start = now_ns();
            push(c->start + interval_ns, fd, c->gen);
        }
    }
}

static void tick(int fd) {
    conn_t *c = conns[fd];
    if (c->index < nchunks) {
        send_bytes(fd, frames[c->index], frame_len[c->index]);
        c->index++;
        if (c->alive) push(c->start + (int64_t)c->index * interval_ns, fd, c->gen);
        return;
    }
    send_bytes(fd, tail_buf, tail_len);
    c->streaming = 0;
    if (c->alive && c->inlen) process(fd);
}

static char *frame(const char *payload, size_t *len) {
    size_t n = strlen(payload);
    char *f = malloc(n + 32);
    *len = sprintf(f, "%zx\r\n%s\r\n", n, payload);
    return f;
}

static void on_signal(int s) { (void)s; stop_flag = 1; }

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s PORT [CHUNKS] [INTERVAL_MS]\n", argv[0]); return 2; }
    int port = atoi(argv[1]);
    if (argc > 2) nchunks = atoi(argv[2]);
    if (argc > 3) interval_ns = (int64_t)(atof(argv[3]) * 1e6);
    signal(SIGPIPE, SIG_IGN); signal(SIGTERM, on_signal); signal(SIGINT, on_signal);
    frames = calloc(nchunks, sizeof(char *)); frame_len = calloc(nchunks, sizeof(size_t));
    char ev[512];
    for (int i = 0; i < nchunks; i++) {
        snprintf(ev, sizeof ev, "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"weak-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok%d \"},\"finish_reason\":null}]}\n\n", i);
        frames[i] = frame(ev, &frame_len[i]);
    }
    snprintf(ev, sizeof ev, "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"weak-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n", nchunks, nchunks + 12);
    size_t l1, l2; char *u = frame(ev, &l1); char *d = frame("data: [DONE]\n\n", &l2);
    tail_buf = malloc(l1 + l2 + 8); memcpy(tail_buf, u, l1); memcpy(tail_buf + l1, d, l2); memcpy(tail_buf + l1 + l2, "0\r\n\r\n", 5); tail_len = l1 + l2 + 5;

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 4096)) { perror("bind/listen"); return 1; }
    epfd = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(epfd, EPOLL_CTL_ADD, ls, &e);
    printf("sse backend (C) on 127.0.0.1:%d, %d chunks every %.3f ms\n", port, nchunks, interval_ns / 1e6); fflush(stdout);
    struct epoll_event evs[512];
    static char rbuf[65536];
    while (!stop_flag) {
        struct timespec to, *top = NULL;
        /* drop stale queue heads, then sleep until the next due tick */
        while (qhead < qtail) {
            item_t *it = &queue[qhead % qcap];
            conn_t *c = conns[it->fd];
            if (c && c->alive && c->gen == it->gen && c->streaming) break;
            qhead++;
        }
        if (qhead < qtail) {
            int64_t wait = queue[qhead % qcap].due - now_ns();
            if (wait < 0) wait = 0;
            to.tv_sec = wait / 1000000000LL; to.tv_nsec = wait % 1000000000LL; top = &to;
        }
        int n = epoll_pwait2(epfd, evs, 512, top, NULL);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                for (;;) {
                    int cfd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
                    if (cfd < 0) break;
                    if (cfd >= MAXFD) { close(cfd); continue; }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    if (!conns[cfd]) conns[cfd] = calloc(1, sizeof(conn_t));
                    conn_t *c = conns[cfd];
                    c->alive = 1; c->streaming = 0; c->inlen = 0; c->outlen = 0;
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = cfd};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &ce);
                }
                continue;
            }
            conn_t *c = conns[fd];
            if (!c || !c->alive) continue;
            if (evs[i].events & EPOLLOUT) {
                ssize_t w = write(fd, c->out, c->outlen);
                if (w < 0 && errno != EAGAIN) { close_conn(fd); continue; }
                if (w > 0) { memmove(c->out, c->out + w, c->outlen - w); c->outlen -= w; }
                if (c->outlen == 0) { struct epoll_event ce = {.events = EPOLLIN, .data.fd = fd}; epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ce); }
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t r = read(fd, rbuf, sizeof rbuf);
                if (r == 0 || (r < 0 && errno != EAGAIN)) { close_conn(fd); continue; }
                if (r > 0) {
                    if (c->inlen + r > INBUF - 1) { close_conn(fd); continue; }
                    memcpy(c->in + c->inlen, rbuf, r); c->inlen += r;
                    process(fd);
                }
            }
        }
        int64_t t = now_ns() + 100000; /* fire everything due within 0.1 ms */
        while (qhead < qtail) {
            item_t it = queue[qhead % qcap];
            if (it.due > t) break;
            qhead++;
            conn_t *c = conns[it.fd];
            if (c && c->alive && c->gen == it.gen && c->streaming) tick(it.fd);
        }
    }
    return 0;
}
