/* Paced-SSE load client in C (epoll, one thread): opens N streams ramped over R seconds,
 * records per stream the time to the first SSE event (from just before connect()) and
 * every gap between consecutive SSE events (content chunks + usage chunk; [DONE] is not
 * a gap sample), with receive-side CLOCK_MONOTONIC timestamps taken right after read().
 * A stream is complete when it got status 200, exactly CHUNKS+1 non-[DONE] events,
 * "data: [DONE]" and the chunked terminator. Prints one JSON object.
 *
 *   ./stream_client HOST PORT PATH STREAMS CHUNKS RAMP_S TIMEOUT_S [MODEL]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd, state; /* 0 not started, 1 connecting/running, 2 finished */
    int64_t start;
    int status, headers_done, chunked, ended, got_done, nev, err;
    size_t sent;
    char *raw; size_t rawlen, rawcap;
    char *sse; size_t sselen, ssecap;
    int64_t *t; int tcap;
} stream_t;

static int64_t now_ns(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec * 1000000000LL + ts.tv_nsec; }
static int cmp64(const void *a, const void *b) { int64_t x = *(const int64_t *)a, y = *(const int64_t *)b; return x < y ? -1 : x > y; }
static double pct(int64_t *v, size_t n, double p) {
    if (!n) return -1; long k = (long)(p / 100.0 * n + 0.5) - 1; if (k < 0) k = 0; if ((size_t)k >= n) k = n - 1; return v[k] / 1e6;
}
static void append(char **buf, size_t *len, size_t *cap, const char *p, size_t n) {
    if (*len + n > *cap) { *cap = (*len + n) * 2 + 256; *buf = realloc(*buf, *cap); }
    memcpy(*buf + *len, p, n); *len += n;
}

static int epfd, nchunks, active;
static char *request; static size_t reqlen;

static void finish(stream_t *s) {
    if (s->state != 1) return;
    epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd); s->state = 2; active--;
}

static void on_data(stream_t *s, const char *data, size_t n, int64_t now) {
    append(&s->raw, &s->rawlen, &s->rawcap, data, n);
    size_t pos = 0;
    if (!s->headers_done) {
        char *end = memmem(s->raw, s->rawlen, "\r\n\r\n", 4);
        if (!end) return;
        s->status = atoi(s->raw + 9);
        s->chunked = memmem(s->raw, end - s->raw, "chunked", 7) != NULL || memmem(s->raw, end - s->raw, "Chunked", 7) != NULL;
        s->headers_done = 1; pos = end - s->raw + 4;
    }
    if (s->chunked) {
        while (pos < s->rawlen) {
            char *nl = memmem(s->raw + pos, s->rawlen - pos, "\r\n", 2);
            if (!nl) break;
            size_t size = strtoul(s->raw + pos, NULL, 16);
            size_t body = nl - s->raw + 2;
            if (size == 0) { s->ended = 1; pos = s->rawlen; break; }
            if (s->rawlen < body + size + 2) break;
            append(&s->sse, &s->sselen, &s->ssecap, s->raw + body, size);
            pos = body + size + 2;
        }
    } else {
        append(&s->sse, &s->sselen, &s->ssecap, s->raw + pos, s->rawlen - pos);
        pos = s->rawlen;
    }
    memmove(s->raw, s->raw + pos, s->rawlen - pos); s->rawlen -= pos;
    size_t p = 0;
    for (;;) {
        char *k = memmem(s->sse + p, s->sselen - p, "\n\n", 2);
        if (!k) break;
        if ((size_t)(k - (s->sse + p)) >= 12 && memcmp(s->sse + p, "data: [DONE]", 12) == 0) s->got_done = 1;
        else { if (s->nev < s->tcap) s->t[s->nev] = now; s->nev++; }
        p = k - s->sse + 2;
    }
    memmove(s->sse, s->sse + p, s->sselen - p); s->sselen -= p;
    if (s->ended || (s->got_done && !s->chunked)) finish(s);
}

int main(int argc, char **argv) {
    if (argc < 8) { fprintf(stderr, "usage: %s HOST PORT PATH STREAMS CHUNKS RAMP_S TIMEOUT_S [MODEL]\n", argv[0]); return 2; }
    const char *host = argv[1]; int port = atoi(argv[2]); const char *path = argv[3];
    int n = atoi(argv[4]); nchunks = atoi(argv[5]); double ramp = atof(argv[6]), timeout = atof(argv[7]);
    const char *model = argc > 8 ? argv[8] : "auto";
    signal(SIGPIPE, SIG_IGN);
    char body[512];
    int bl = snprintf(body, sizeof body, "{\"model\":\"%s\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a short story about a lighthouse.\"}],\"max_tokens\":%d}", model, nchunks);
    request = malloc(2048);
    reqlen = snprintf(request, 2048, "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", path, host, port, bl, body);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &addr.sin_addr);
    stream_t *ss = calloc(n, sizeof(stream_t));
    for (int i = 0; i < n; i++) { ss[i].tcap = nchunks + 8; ss[i].t = malloc(sizeof(int64_t) * ss[i].tcap); }
    epfd = epoll_create1(0);
    int64_t t0 = now_ns() + 20000000LL, deadline_extra = (int64_t)(timeout * 1e9);
    int next = 0, one = 1;
    struct epoll_event evs[1024];
    static char rbuf[65536];
    int connect_errors = 0, timeouts = 0; int64_t last_check = 0;
    while (next < n || active > 0) {
        int64_t now = now_ns();
        while (next < n && t0 + (int64_t)(ramp * 1e9 * next / n) <= now) {
            stream_t *s = &ss[next++];
            s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            s->start = now_ns(); s->state = 1; active++;
            int r = connect(s->fd, (struct sockaddr *)&addr, sizeof addr);
            if (r < 0 && errno != EINPROGRESS) { s->err = errno; connect_errors++; close(s->fd); s->state = 2; active--; continue; }
            struct epoll_event e = {.events = EPOLLIN | EPOLLOUT, .data.ptr = s};
            epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &e);
        }
        struct timespec to = {0, 0}, *top = NULL;
        if (next < n) {
            int64_t w = t0 + (int64_t)(ramp * 1e9 * next / n) - now_ns(); if (w < 0) w = 0;
            to.tv_sec = w / 1000000000LL; to.tv_nsec = w % 1000000000LL; top = &to;
        } else { to.tv_sec = 0; to.tv_nsec = 200000000; top = &to; }
        int m = epoll_pwait2(epfd, evs, 1024, top, NULL);
        for (int i = 0; i < m; i++) {
            stream_t *s = evs[i].data.ptr;
            if (s->state != 1) continue;
            if ((evs[i].events & EPOLLOUT) && s->sent < reqlen) {
                ssize_t w = write(s->fd, request + s->sent, reqlen - s->sent);
                if (w < 0 && errno != EAGAIN) { s->err = errno; connect_errors++; finish(s); continue; }
                if (w > 0) s->sent += w;
                if (s->sent == reqlen) { struct epoll_event e = {.events = EPOLLIN, .data.ptr = s}; epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &e); }
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                for (;;) {
                    ssize_t r = read(s->fd, rbuf, sizeof rbuf);
                    int64_t t = now_ns();
                    if (r > 0) { on_data(s, rbuf, r, t); if (s->state != 1 || r < (ssize_t)sizeof rbuf) break; continue; }
                    if (r == 0 || errno != EAGAIN) { if (r < 0) s->err = errno; finish(s); }
                    break;
                }
            }
        }
        if (next >= n && now_ns() - last_check > 100000000LL) {
            int64_t t = last_check = now_ns();
            for (int i = 0; i < n; i++) if (ss[i].state == 1 && t - ss[i].start > deadline_extra) { ss[i].err = ETIMEDOUT; timeouts++; finish(&ss[i]); }
        }
    }
    int64_t wall = now_ns() - t0;
    int64_t *ttft = malloc(sizeof(int64_t) * n), *dur = malloc(sizeof(int64_t) * n);
    int64_t *gaps = malloc(sizeof(int64_t) * (size_t)n * (nchunks + 8));
    size_t nt = 0, ng = 0, nd = 0;
    int incomplete = 0, r_status = 0, r_count = 0, r_done = 0, r_term = 0, r_err = 0;
    for (int i = 0; i < n; i++) {
        stream_t *s = &ss[i];
        int ok = s->status == 200 && s->got_done && s->ended && s->nev == nchunks + 1;
        if (!ok) {
            incomplete++;
            if (s->status == 0) r_err++;
            else if (s->status != 200) r_status++;
            else if (s->nev != nchunks + 1) r_count++;
            else if (!s->got_done) r_done++;
            else r_term++;
        }
        int k = s->nev < s->tcap ? s->nev : s->tcap;
        if (k > 0) {
            ttft[nt++] = s->t[0] - s->start;
            dur[nd++] = s->t[k - 1] - s->start;
            for (int j = 1; j < k; j++) gaps[ng++] = s->t[j] - s->t[j - 1];
        }
    }
    qsort(ttft, nt, 8, cmp64); qsort(gaps, ng, 8, cmp64); qsort(dur, nd, 8, cmp64);
    printf("{\"url\":\"http://%s:%d%s\",\"streams\":%d,\"chunks\":%d,\"ramp_s\":%g,\"wall_s\":%.3f,"
           "\"completed\":%d,\"incomplete\":%d,\"incomplete_reasons\":{\"no_response_or_connect_error\":%d,\"bad_status\":%d,"
           "\"wrong_chunk_count\":%d,\"no_done\":%d,\"no_terminator\":%d,\"timeouts\":%d,\"connect_errors\":%d},\"gap_samples\":%zu,",
           host, port, path, n, nchunks, ramp, wall / 1e9, n - incomplete, incomplete, r_err, r_status, r_count, r_done, r_term, timeouts, connect_errors, ng);
    printf("\"ttft_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f},", pct(ttft, nt, 50), pct(ttft, nt, 90), pct(ttft, nt, 99), pct(ttft, nt, 100));
    printf("\"gap_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,\"min\":%.3f},",
           pct(gaps, ng, 50), pct(gaps, ng, 90), pct(gaps, ng, 99), pct(gaps, ng, 99.9), pct(gaps, ng, 100), ng ? gaps[0] / 1e6 : -1);
    printf("\"stream_duration_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f}}\n", pct(dur, nd, 50), pct(dur, nd, 99), pct(dur, nd, 100));
    return 0;
}
