/*
 * G.711 RTP load generator for bench/media (built by run.ts with gcc -O2).
 *
 * N calls, each two endpoints (A on base+2i, B on base+2i+1, 127.0.0.1), each
 * sending 20 ms PCMU packets (12-byte RTP header + 160 bytes) with real
 * sequence numbers, timestamps and SSRCs to the relay port the relay gave it.
 * Calls are spread evenly over the 20 ms period. Every payload carries the
 * send time (CLOCK_MONOTONIC ns), call index and direction, so the receiver
 * measures one-way latency, loss, reordering and duplicates per stream.
 *
 *   loadgen CALLS SECONDS BASE_PORT TARGETS_FILE
 *
 * TARGETS_FILE: one line per call, "ipA portA ipB portB": where A sends and
 * where B sends. Prints one JSON object on stdout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAYLOAD 160
#define PKT (12 + PAYLOAD)
#define PERIOD_NS 20000000ULL
#define LAT_BUCKETS 200000 /* 1 us buckets up to 200 ms */
#define BATCH 32

struct stream {
  int fd;                  /* socket this endpoint sends from and receives on */
  struct sockaddr_in to;   /* relay port it sends to */
  uint16_t seq;
  uint32_t ts, ssrc;
  /* receive side: packets that arrive at this endpoint (sent by the other) */
  int32_t max_seq;
  uint64_t received, reordered, duplicates, bad, stale;
  uint8_t seen[8192];      /* bitmap of seq numbers seen (65536 bits) */
};

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ULL + t.tv_nsec;
}

static uint64_t lat[LAT_BUCKETS + 1];
/* the same for packets sent after the first second of the run (start-up transients left out) */
static uint64_t lat_steady[LAT_BUCKETS + 1];
static uint64_t lat_steady_count;
static uint64_t lat_count, lat_over;

static double pct_of(const uint64_t *h, uint64_t count, double p) {
  uint64_t want = (uint64_t)(p * count), acc = 0;
  for (int i = 0; i <= LAT_BUCKETS; i++) {
    acc += h[i];
    if (acc > want) return i / 1000.0; /* ms */
  }
  return LAT_BUCKETS / 1000.0;
}
static double pct(double p) { return pct_of(lat, lat_count, p); }

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: loadgen CALLS SECONDS BASE_PORT TARGETS_FILE\n");
    return 2;
  }
  int n = atoi(argv[1]);
  double secs = atof(argv[2]);
  int base = atoi(argv[3]);
  FILE *tf = fopen(argv[4], "r");
  if (!tf || n <= 0) { perror("targets"); return 2; }
  struct rlimit rl = {65536, 65536};
  setrlimit(RLIMIT_NOFILE, &rl);

  struct stream *s = calloc((size_t)n * 2, sizeof *s);
  int ep = epoll_create1(0);
  for (int i = 0; i < n; i++) {
    char ipa[64], ipb[64];
    int pa, pb;
    if (fscanf(tf, "%63s %d %63s %d", ipa, &pa, ipb, &pb) != 4) { fprintf(stderr, "targets: line %d\n", i + 1); return 2; }
    for (int d = 0; d < 2; d++) {
      struct stream *x = &s[2 * i + d];
      x->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
      int sz = 1 << 20;
      setsockopt(x->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
      struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons(base + 2 * i + d)};
      inet_pton(AF_INET, "127.0.0.1", &me.sin_addr);
      if (bind(x->fd, (struct sockaddr *)&me, sizeof me) != 0) { fprintf(stderr, "bind %d: %s\n", base + 2 * i + d, strerror(errno)); return 2; }
      x->to.sin_family = AF_INET;
      x->to.sin_port = htons(d == 0 ? pa : pb);
      inet_pton(AF_INET, d == 0 ? ipa : ipb, &x->to.sin_addr);
      x->ssrc = 0x10000000u + 2 * i + d;
      x->seq = (uint16_t)(i * 7919);
      x->ts = (uint32_t)i * 1000u;
      x->max_seq = -1;
      struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 2 * i + d};
      epoll_ctl(ep, EPOLL_CTL_ADD, x->fd, &ev);
    }
  }
  fclose(tf);

  uint32_t run_id = (uint32_t)now_ns() ^ (uint32_t)getpid();
  uint8_t pkt[PKT];
  memset(pkt, 0xff, sizeof pkt); /* u-law silence */
  pkt[0] = 0x80;
  pkt[1] = 0; /* PCMU */

  uint64_t *next = malloc(sizeof(uint64_t) * n);
  uint64_t start = now_ns() + 50000000ULL;
  for (int i = 0; i < n; i++) next[i] = start + PERIOD_NS * (uint64_t)i / n;
  uint64_t stop_send = start + (uint64_t)(secs * 1e9), stop_all = stop_send + 300000000ULL;
  uint64_t sent = 0, send_err = 0, max_behind = 0;
  int ptr = 0;

  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  uint8_t bufs[BATCH][256];
  for (int k = 0; k < BATCH; k++) {
    iov[k].iov_base = bufs[k];
    iov[k].iov_len = sizeof bufs[k];
    memset(&msgs[k], 0, sizeof msgs[k]);
    msgs[k].msg_hdr.msg_iov = &iov[k];
    msgs[k].msg_hdr.msg_iovlen = 1;
  }
  struct epoll_event evs[256];

  for (;;) {
    uint64_t t = now_ns();
    if (t >= stop_all) break;
    /* send what is due: calls become due in index order */
    while (t < stop_send && next[ptr] <= t) {
      uint64_t behind = t - next[ptr];
      if (behind > max_behind) max_behind = behind;
      for (int d = 0; d < 2; d++) {
        struct stream *x = &s[2 * ptr + d];
        pkt[2] = x->seq >> 8; pkt[3] = x->seq & 0xff;
        uint32_t v = htonl(x->ts); memcpy(pkt + 4, &v, 4);
        v = htonl(x->ssrc); memcpy(pkt + 8, &v, 4);
        uint64_t st = now_ns(); memcpy(pkt + 12, &st, 8);
        uint32_t id = 2 * ptr + d; memcpy(pkt + 20, &id, 4);
        memcpy(pkt + 24, &run_id, 4);
        if (sendto(x->fd, pkt, PKT, 0, (struct sockaddr *)&x->to, sizeof x->to) == PKT) sent++;
        else send_err++;
        x->seq++;
        x->ts += PAYLOAD;
      }
      next[ptr] += PERIOD_NS;
      ptr = (ptr + 1) % n;
    }
    uint64_t wait = next[ptr] > t ? next[ptr] - t : 0;
    /* sleep until the next send is due (at most 1 ms): no polling, so the generator can run real time */
    if (wait > 1000000ULL) wait = 1000000ULL;
    struct timespec until = {0, (long)wait};
    int k = epoll_pwait2(ep, evs, 256, &until, NULL);
    for (int e = 0; e < k; e++) {
      struct stream *rx = &s[evs[e].data.u32];
      for (;;) {
        int got = recvmmsg(rx->fd, msgs, BATCH, MSG_DONTWAIT, NULL);
        if (got <= 0) break;
        uint64_t rt = now_ns();
        for (int m = 0; m < got; m++) {
          uint8_t *b = bufs[m];
          if (msgs[m].msg_len != PKT || (b[0] & 0xc0) != 0x80) { rx->bad++; continue; }
          uint32_t id, rid; memcpy(&id, b + 20, 4); memcpy(&rid, b + 24, 4);
          if (rid != run_id) { rx->stale++; continue; } /* a late packet of an earlier run */
          uint64_t st; memcpy(&st, b + 12, 8);
          if (id != (evs[e].data.u32 ^ 1)) { rx->bad++; continue; } /* must come from the other endpoint */
          uint16_t seq = (b[2] << 8) | b[3];
          if (rx->seen[seq >> 3] & (1 << (seq & 7))) { rx->duplicates++; continue; }
          rx->seen[seq >> 3] |= 1 << (seq & 7);
          rx->received++;
          if (rx->max_seq >= 0 && (int16_t)(seq - (uint16_t)rx->max_seq) < 0) rx->reordered++;
          else rx->max_seq = seq;
          uint64_t us = rt > st ? (rt - st) / 1000 : 0;
          if (us > LAT_BUCKETS) { lat_over++; us = LAT_BUCKETS; }
          lat[us]++;
          lat_count++;
          if (st >= start + 1000000000ULL) { lat_steady[us]++; lat_steady_count++; }
        }
        if (got < BATCH) break;
      }
    }
  }
  uint64_t received = 0, reordered = 0, dup = 0, bad = 0, stale = 0;
  for (int i = 0; i < 2 * n; i++) {
    received += s[i].received; reordered += s[i].reordered; dup += s[i].duplicates; bad += s[i].bad; stale += s[i].stale;
  }
  printf("{\"calls\":%d,\"seconds\":%.3f,\"sent\":%lu,\"received\":%lu,\"lost\":%ld,\"reordered\":%lu,\"duplicates\":%lu,"
         "\"bad\":%lu,\"stale\":%lu,\"sendErrors\":%lu,\"pps\":%.0f,\"latencyP50Ms\":%.3f,\"latencyP99Ms\":%.3f,\"latencyMaxMs\":%.3f,"
         "\"maxSendLagMs\":%.3f,\"steadyP50Ms\":%.3f,\"steadyP99Ms\":%.3f}\n",
         n, secs, sent, received, (long)sent - (long)received, reordered, dup, bad, stale, send_err, sent / secs, pct(0.5), pct(0.99),
         pct(0.999999), max_behind / 1e6, pct_of(lat_steady, lat_steady_count, 0.5),
         pct_of(lat_steady, lat_steady_count, 0.99));
  return 0;
}
