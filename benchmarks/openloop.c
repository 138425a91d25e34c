// openloop: an open-loop HTTP/1.1 load generator for POST /v1/transactions (or the route in
// OPENLOOP_PATH), for a p99 at a fixed offered load (benchmarks/http-peer.sh builds it with `cc -O2`).
//
//   openloop HOST PORT RATE CONNECTIONS SECONDS FILE [GRACE_SECONDS]
//
// Request i (one line of FILE, a JSON transaction as benchmarks/decide.lua sends; line i of the
// file, never one twice) is due at start + i / RATE, for RATE × SECONDS requests. It goes out on
// the keep-alive connection idle the longest of CONNECTIONS (no pipelining); when none is idle it waits,
// in order, and its latency still runs from its due time, so a server that falls behind is
// charged for the queue it causes (no coordinated omission). After the schedule ends, queued and
// in-flight requests have GRACE_SECONDS (default 2) more; any left then are "unfinished" and enter
// the percentiles at their lower bound (deadline − due time). One thread, epoll, non-blocking
// sockets, a timerfd for the schedule (not a busy loop: the server shares this machine's cores).
//
// Prints one summary line and `result ACHIEVED P50 P90 P99 P99.9 MAX NON2XX CONN_ERRORS UNFINISHED`
// (answers/s from start to the last answer; milliseconds). Exit status 1 on a protocol surprise
// (chunked or unframed answer, bytes nobody asked for), a failed connect, or too short a FILE.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define die(...) do { fprintf(stderr, "openloop: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

enum { IDLE, BUSY };
typedef struct {
  int fd, state, want_out;
  long req;           // the request in flight
  size_t off;         // bytes of it written
  char *buf;          // the answer so far
  size_t len, cap, head, body;  // bytes read; header length (0 until known); Content-Length
  int close_after;    // the server said Connection: close
  int64_t idle_at;    // when it last became idle
} conn_t;

static struct addrinfo *addr;
static int ep;
static char **reqs;
static size_t *req_len;
static int64_t *due_ns, *lat_ns;  // lat_ns: -1 = not answered (yet), -2 = failed with its connection
static conn_t *conns;
static int *idle, nidle;
static long non2xx, conn_errors, answered;
static int64_t last_answer;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void watch(conn_t *c, int idx, int op, int out) {
  struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.u32 = (uint32_t)idx};
  if (epoll_ctl(ep, op, c->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
  c->want_out = out;
}

static void make_idle(int idx) {
  conns[idx].idle_at = now_ns();
  idle[nidle++] = idx;
}

// The connection idle the longest: every connection stays in use, as under wrk, so none sits
// unused long enough for a server's keep-alive timeout (uvicorn's is 5 s) to close it under us.
static int take_idle(void) {
  int best = 0;
  for (int i = 1; i < nidle; i++)
    if (conns[idle[i]].idle_at < conns[idle[best]].idle_at) best = i;
  int idx = idle[best];
  idle[best] = idle[--nidle];
  return idx;
}

// A blocking connect (loopback: the kernel completes it without the server's help), then non-blocking.
static void open_conn(int idx) {
  conn_t *c = &conns[idx];
  c->fd = socket(addr->ai_family, SOCK_STREAM, 0);
  if (c->fd < 0 || connect(c->fd, addr->ai_addr, addr->ai_addrlen) < 0) die("connect: %s", strerror(errno));
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
  c->state = IDLE;
  c->len = c->head = c->body = 0;
  c->close_after = 0;
  watch(c, idx, EPOLL_CTL_ADD, 0);
  make_idle(idx);
}

static void reopen(int idx) {
  close(conns[idx].fd);  // also leaves the epoll set
  for (int i = 0; i < nidle; i++)
    if (idle[i] == idx) { idle[i] = idle[--nidle]; break; }
  open_conn(idx);
}

// Writes what the socket takes; the rest waits for EPOLLOUT.
static void pump(int idx) {
  conn_t *c = &conns[idx];
  while (c->off < req_len[c->req]) {
    ssize_t n = send(c->fd, reqs[c->req] + c->off, req_len[c->req] - c->off, MSG_NOSIGNAL);
    if (n > 0) { c->off += (size_t)n; continue; }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) { if (!c->want_out) watch(c, idx, EPOLL_CTL_MOD, 1); return; }
    conn_errors++;  // reset by the server: the request failed, not retried
    lat_ns[c->req] = -2;
    reopen(idx);
    return;
  }
  if (c->want_out) watch(c, idx, EPOLL_CTL_MOD, 0);
}

static void send_on(int idx, long r) {
  conn_t *c = &conns[idx];
  c->state = BUSY;
  c->req = r;
  c->off = 0;
  pump(idx);
}

// The header's value for NAME (lower case, with the colon), or NULL.
static const char *header(const char *head, size_t n, const char *name) {
  size_t k = strlen(name);
  for (const char *p = head; p && p + k < head + n; p = memchr(p, '\n', (size_t)(head + n - p))) {
    if (*p == '\n') p++;
    if (strncasecmp(p, name, k) == 0) {
      p += k;
      while (*p == ' ') p++;
      return p;
    }
  }
  return NULL;
}

// Reads what arrived; on a whole answer, records it and frees the connection.
static void receive(int idx) {
  conn_t *c = &conns[idx];
  for (;;) {
    if (c->cap - c->len < 4096) {
      c->cap = c->cap ? c->cap * 2 : 65536;
      if (!(c->buf = realloc(c->buf, c->cap))) die("out of memory");
    }
    ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len - 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {  // closed (or reset): fine between requests, a failure during one
      if (c->state == BUSY) { conn_errors++; lat_ns[c->req] = -2; }
      reopen(idx);
      return;
    }
    if (c->state == IDLE) die("the server sent %zd bytes nobody asked for", n);
    c->len += (size_t)n;
    c->buf[c->len] = 0;
    if (!c->head) {
      char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
      if (!end) continue;
      c->head = (size_t)(end - c->buf) + 4;
      if (c->len < 12 || strncmp(c->buf, "HTTP/1.", 7)) die("not an HTTP/1.x answer: %.40s", c->buf);
      const char *te = header(c->buf, c->head, "transfer-encoding:");
      if (te && strncasecmp(te, "identity", 8)) die("chunked answers are not supported");
      const char *cl = header(c->buf, c->head, "content-length:");
      int status = atoi(c->buf + 9);
      if (!cl && status != 204 && status != 304) die("an answer without Content-Length (status %d)", status);
      c->body = cl ? strtoul(cl, NULL, 10) : 0;
      const char *cn = header(c->buf, c->head, "connection:");
      c->close_after = cn && strncasecmp(cn, "close", 5) == 0;
    }
    if (c->len < c->head + c->body) continue;
    if (c->len > c->head + c->body) die("%zu bytes after an answer (no pipelining here)", c->len - c->head - c->body);
    int64_t t = now_ns();
    int status = atoi(c->buf + 9);
    if (status < 200 || status > 299) non2xx++;
    lat_ns[c->req] = t - due_ns[c->req];
    answered++;
    last_answer = t;
    int unfinished_write = c->off < req_len[c->req];  // answered before it was all sent (e.g. 413)
    c->state = IDLE;
    c->len = c->head = c->body = 0;
    if (c->close_after || unfinished_write) { reopen(idx); return; }  // reopen makes it idle
    make_idle(idx);
    return;
  }
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc < 7 || argc > 8) die("usage: openloop HOST PORT RATE CONNECTIONS SECONDS FILE [GRACE_SECONDS]");
  const char *host = argv[1], *port = argv[2], *file = argv[6];
  // OPENLOOP_PATH: another route taking the same bodies (benchmarks/online.sh: /predict?mode=online).
  const char *path = getenv("OPENLOOP_PATH") ? getenv("OPENLOOP_PATH") : "/v1/transactions";
  long rate = atol(argv[3]), nconn = atol(argv[4]);
  double seconds = atof(argv[5]), grace = argc > 7 ? atof(argv[7]) : 2;
  if (rate <= 0 || nconn <= 0 || seconds <= 0 || grace < 0) die("RATE, CONNECTIONS and SECONDS must be positive");
  long total = (long)(rate * seconds);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  int gai = getaddrinfo(host, port, &hints, &addr);
  if (gai) die("%s:%s: %s", host, port, gai_strerror(gai));

  // Every request formatted before the run, as decide.lua does: building them on time costs CPU
  // the server shares.
  FILE *f = fopen(file, "r");
  if (!f) die("%s: %s", file, strerror(errno));
  reqs = calloc((size_t)total, sizeof *reqs);
  req_len = calloc((size_t)total, sizeof *req_len);
  due_ns = calloc((size_t)total, sizeof *due_ns);
  lat_ns = malloc((size_t)total * sizeof *lat_ns);
  if (!reqs || !req_len || !due_ns || !lat_ns) die("out of memory");
  char *line = NULL;
  size_t lcap = 0;
  for (long i = 0; i < total; i++) {
    ssize_t n = getline(&line, &lcap, f);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
    if (n <= 0) die("%s ran out after %ld transactions: %ld a second for %g s need %ld (give a longer file)",
                    file, i, rate, seconds, total);
    req_len[i] = (size_t)asprintf(&reqs[i], "POST %s HTTP/1.1\r\nHost: %s:%s\r\n"
                                  "Content-Type: application/json\r\nContent-Length: %zd\r\n\r\n%.*s",
                                  path, host, port, n, (int)n, line);
    lat_ns[i] = -1;
  }
  fclose(f);

  signal(SIGPIPE, SIG_IGN);  // a write to a closed connection is a counted error, not our end
  prctl(PR_SET_TIMERSLACK, 1UL);  // wake-ups on time: lateness here would be charged to the server
  if ((ep = epoll_create1(0)) < 0) die("epoll_create1: %s", strerror(errno));
  conns = calloc((size_t)nconn, sizeof *conns);
  idle = calloc((size_t)nconn, sizeof *idle);
  for (int i = 0; i < nconn; i++) open_conn(i);
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  struct epoll_event tev = {.events = EPOLLIN, .data.u32 = (uint32_t)nconn};
  if (tfd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev) < 0) die("timerfd: %s", strerror(errno));

  int64_t start = now_ns() + 10000000;  // 10 ms to settle after connecting
  for (long i = 0; i < total; i++) due_ns[i] = start + (int64_t)((double)i * 1e9 / (double)rate);
  int64_t end = start + (int64_t)(seconds * 1e9), deadline = end + (int64_t)(grace * 1e9);
  long due = 0, next = 0;  // requests due so far; the next to send (those between wait, in order)
  struct epoll_event evs[256];
  for (;;) {
    int64_t t = now_ns();
    while (due < total && due_ns[due] <= t) due++;
    while (next < due && nidle > 0 && t < deadline) send_on(take_idle(), next++);
    if (t >= deadline || (next == total && nidle == nconn)) break;
    // The next due time matters only when a connection is free to take it; a response wakes us too.
    int64_t wake = nidle > 0 && due < total ? due_ns[due] : deadline;
    struct itimerspec its = {.it_value = {.tv_sec = wake / 1000000000, .tv_nsec = wake % 1000000000}};
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
    for (int k = 0; k < n; k++) {
      uint32_t idx = evs[k].data.u32;
      if (idx == (uint32_t)nconn) { uint64_t x; (void)!read(tfd, &x, sizeof x); continue; }
      // A connection reopened earlier in this batch has a new socket: its stale events do no harm
      // (reads find EAGAIN, an idle connection has nothing to write).
      if ((evs[k].events & EPOLLOUT) && conns[idx].state == BUSY) pump((int)idx);
      if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) receive((int)idx);
    }
  }

  // Unanswered requests (in flight or never sent) enter at their lower bound; failed ones are
  // counted as connection errors only.
  long unfinished = 0, m = 0;
  int64_t stop = now_ns();
  for (long i = 0; i < total; i++) {
    if (lat_ns[i] == -2) continue;
    if (lat_ns[i] == -1) { lat_ns[i] = stop > due_ns[i] ? stop - due_ns[i] : 0; unfinished++; }
    lat_ns[m++] = lat_ns[i];
  }
  if (m == 0) die("every request failed (%ld connection errors)", conn_errors);
  qsort(lat_ns, (size_t)m, sizeof *lat_ns, cmp64);
  double pct[4] = {50, 90, 99, 99.9}, ms[4];
  for (int i = 0; i < 4; i++) {
    long rank = (long)((pct[i] / 100.0) * (double)m + 0.999999);  // nearest rank
    ms[i] = (double)lat_ns[(rank < 1 ? 1 : rank) - 1] / 1e6;
  }
  double span = (double)((last_answer > end ? last_answer : end) - start) / 1e9;
  double achieved = (double)answered / span;
  printf("offered %ld/s for %g s over %ld connections: sent %ld, answered %ld (non-2xx %ld), connection errors %ld, "
         "unfinished %ld after %g s of grace\n", rate, seconds, nconn, next, answered, non2xx, conn_errors, unfinished,
         grace);
  printf("result %.0f %.2f %.2f %.2f %.2f %.2f %ld %ld %ld\n", achieved, ms[0], ms[1], ms[2], ms[3],
         (double)lat_ns[m - 1] / 1e6, non2xx, conn_errors, unfinished);
  return 0;
}
