/*
 * media-proxy native relay engine (N-API addon, Linux).
 *
 * The hot path of src/relay.ts (MediaRelay.onPacket, track, readRtcp) in C on
 * its own thread: epoll over every stream's RTP and RTCP sockets, recvmmsg to
 * drain a socket, sendmmsg of the batch out of the sink stream's socket. No
 * allocation per packet, no JS per packet.
 *
 * One "slot" per relay port pair: slot = (base - first even port) / 2.
 * JS keeps the control plane (calls, sides, SDP, timeouts) and talks to the
 * thread through a mutex it takes around each edit (lock/unlock), writing a
 * stream's configuration (configure), reading its packet-side state (pull) and
 * writing back the latch state it changed (push) - the same fields, with the
 * same names, as the JS RelayStream.
 *
 * Counters the JS side reads without a call (metrics, the sweep's last-packet
 * times) live in a Float64Array over memory this thread writes:
 *   [0]        now (ms) when the relay follows a manual clock (tests)
 *   [1..5]     packetsIn, packetsOut, bytesIn, bytesOut, rtcpIn
 *   [6..10]    dropped: no_session, strict_source, no_destination, malformed, loop
 *   [16 + 8*slot + 0..6] rtpPackets, rtpBytes, rtcpPackets, rtcpBytes, dropped, lastRtp, lastRtcp
 * (aligned doubles with one writer: a reader sees each value whole).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <node_api.h>

#define G_NOW 0
#define G_PIN 1
#define G_POUT 2
#define G_BIN 3
#define G_BOUT 4
#define G_RTCPIN 5
#define G_DROP 6 /* + reason */
#define D_NO_SESSION 0
#define D_STRICT 1
#define D_NO_DEST 2
#define D_MALFORMED 3
#define D_LOOP 4
#define G_SIZE 16
#define S_FIELDS 8
#define S_RTP_PACKETS 0
#define S_RTP_BYTES 1
#define S_RTCP_PACKETS 2
#define S_RTCP_BYTES 3
#define S_DROPPED 4
#define S_LAST_RTP 5
#define S_LAST_RTCP 6

#define BATCH 32
#define BUF 2048
#define MAX_IFACES 16
#define LAT_BUCKETS 10000 /* of 10 us */

typedef struct {
  int family; /* 0 for none (empty address) */
  uint8_t a[16];
  uint16_t port;
} addr_t;

typedef struct {
  int bound;
  int rtp_fd, rtcp_fd;
  int family;
  /* configuration (JS writes) */
  int dead, mux, symmetric, strict;
  int sink; /* slot or -1 */
  double clock_rate;
  addr_t sdp_rtp, sdp_rtcp;
  /* latch state (both) */
  addr_t rtp, rtcp; /* where we send to this party */
  int latched, rtcp_latched;
  addr_t stale;
  int64_t stale_ssrc;
  double stale_until;
  /* RTP receive statistics (thread writes) */
  int64_t ssrc;
  double base_seq, max_seq, cycles, received, lost_before, reordered;
  double jitter;
  int32_t transit;
  int has_transit;
  /* RTCP report figures */
  double r_fraction_lost, r_cumulative_lost, r_jitter, r_rtt_ms, r_reports, r_last_sr_ntp, r_last_sr_at;
} stream_t;

typedef struct {
  pthread_mutex_t mu;
  pthread_t thread;
  int running;
  int stop;
  int epfd, evfd;
  int port_min, port_max, first;
  int slots;
  stream_t *s;
  double *g; /* shared counters (owned by the ArrayBuffer) */
  int manual_clock;
  /*
   * Residence time (bench): with measure on, each socket timestamps arrivals (SO_TIMESTAMPNS)
   * and the thread counts, per relayed packet, the time from the kernel's receipt to its send:
   * socket queue wait plus the thread's own work. 10 us buckets up to 100 ms.
   */
  int measure;
  uint64_t lat[LAT_BUCKETS + 1];
  uint64_t lat_count;
  uint64_t lat_max_ns;
  uint8_t ctl[BATCH][CMSG_SPACE(sizeof(struct timespec))];
  int n_ifaces;
  addr_t ifaces[MAX_IFACES];
  /* batch buffers */
  struct mmsghdr in[BATCH], out[BATCH];
  struct iovec iov_in[BATCH], iov_out[BATCH];
  struct sockaddr_storage from[BATCH], to[BATCH];
  uint8_t buf[BATCH][BUF];
} relay_t;

/* ---- addresses ------------------------------------------------------------------------- */

static void addr_from_sa(addr_t *a, const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
    a->family = AF_INET;
    memset(a->a, 0, 16);
    memcpy(a->a, &in->sin_addr, 4);
    a->port = ntohs(in->sin_port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    a->family = AF_INET6;
    memcpy(a->a, &in6->sin6_addr, 16);
    a->port = ntohs(in6->sin6_port);
  } else {
    memset(a, 0, sizeof *a);
  }
}

static socklen_t addr_to_sa(const addr_t *a, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof(struct sockaddr_in6));
  if (a->family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    memcpy(&in->sin_addr, a->a, 4);
    in->sin_port = htons(a->port);
    return sizeof *in;
  }
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
  in6->sin6_family = AF_INET6;
  memcpy(&in6->sin6_addr, a->a, 16);
  in6->sin6_port = htons(a->port);
  return sizeof *in6;
}

/* Same address (the port compared separately). Empty never equals anything. */
static int same_ip(const addr_t *x, const addr_t *y) {
  return x->family != 0 && x->family == y->family && memcmp(x->a, y->a, x->family == AF_INET ? 4 : 16) == 0;
}

/* "ip" text -> addr (port kept); empty or unparseable -> family 0. */
static void addr_parse(addr_t *a, const char *text) {
  memset(a->a, 0, 16);
  a->family = 0;
  if (!text[0]) return;
  if (inet_pton(AF_INET, text, a->a) == 1) a->family = AF_INET;
  else if (inet_pton(AF_INET6, text, a->a) == 1) a->family = AF_INET6;
}

static void addr_text(const addr_t *a, char *out, size_t n) {
  out[0] = 0;
  if (a->family == AF_INET || a->family == AF_INET6) inet_ntop(a->family, a->a, out, (socklen_t)n);
}

/* ---- time ------------------------------------------------------------------------------ */

static double now_ms(relay_t *r) {
  if (r->manual_clock) return r->g[G_NOW];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)(ts.tv_nsec / 1000000);
}

/* ---- hot path -------------------------------------------------------------------------- */

static inline uint32_t be32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint16_t be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }

static double lost_of(const stream_t *s) {
  double expected = s->received == 0 ? 0 : s->cycles + s->max_seq - s->base_seq + 1;
  double d = expected - s->received;
  return s->lost_before + (d > 0 ? d : 0);
}

/* Sequence and jitter bookkeeping (RFC 3550 A.1 simplified, A.8), as relay.ts track(). */
static void track(stream_t *s, const uint8_t *b, double now) {
  double seq = be16(b + 2);
  int64_t ssrc = be32(b + 8);
  if (ssrc != s->ssrc) {
    s->lost_before = lost_of(s);
    s->ssrc = ssrc;
    s->base_seq = seq;
    s->max_seq = seq;
    s->cycles = 0;
    s->received = 0;
    s->has_transit = 0;
  } else {
    int delta = ((int)seq - (int)s->max_seq) & 0xffff;
    if (delta != 0 && delta < 0x8000) {
      if (seq < s->max_seq) s->cycles += 65536;
      s->max_seq = seq;
    } else if (delta != 0) {
      s->reordered++;
    }
  }
  s->received++;
  int64_t arrival = (int64_t)floor((now * s->clock_rate) / 1000.0);
  int32_t transit = (int32_t)(uint32_t)((uint64_t)arrival - (uint64_t)be32(b + 4));
  if (s->has_transit) {
    int32_t dd = (int32_t)((uint32_t)transit - (uint32_t)s->transit);
    double d = dd < 0 ? -(double)dd : (double)dd;
    s->jitter += (d - s->jitter) / 16;
  }
  s->transit = transit;
  s->has_transit = 1;
}

static uint32_t ntp_middle32(double ms) {
  double secs = floor(ms / 1000) + 2208988800.0;
  uint32_t frac = (uint32_t)floor((fmod(ms, 1000) / 1000) * 65536);
  return ((((uint32_t)(int64_t)secs) & 0xffff) << 16) | frac;
}

/* As rtcp.ts readRtcp: each SR/RR's first report block updates the stream's report figures. */
static void read_rtcp(stream_t *s, const uint8_t *b, int n, double now) {
  int off = 0;
  while (off + 4 <= n) {
    int v = b[off];
    if ((v & 0xc0) != 0x80) return;
    int count = v & 0x1f;
    int pt = b[off + 1];
    int len = (be16(b + off + 2) + 1) * 4;
    if (off + len > n) return;
    int blocks = -1;
    if (pt == 200 && len >= 28) {
      s->r_last_sr_ntp = (double)((((be32(b + off + 8) & 0xffff) << 16) | (be32(b + off + 12) >> 16)));
      s->r_last_sr_at = now;
      blocks = off + 28;
    } else if (pt == 201 && len >= 8) {
      blocks = off + 8;
    }
    if (blocks >= 0 && count > 0 && blocks + 24 <= off + len) {
      int fl = b[blocks + 4];
      int cum = (b[blocks + 5] << 16) | (b[blocks + 6] << 8) | b[blocks + 7];
      if (cum & 0x800000) cum -= 0x1000000;
      s->r_fraction_lost = fl / 256.0;
      s->r_cumulative_lost = cum;
      s->r_jitter = be32(b + blocks + 12);
      uint32_t lsr = be32(b + blocks + 16);
      uint32_t dlsr = be32(b + blocks + 20);
      if (lsr != 0) {
        uint32_t a = ntp_middle32(now);
        double rtt = ((double)(uint32_t)(a - lsr - dlsr) / 65536) * 1000;
        s->r_rtt_ms = rtt < 60000 ? rtt : -1;
      }
      s->r_reports++;
    }
    off += len;
  }
}

/* A source that is one of our own bound relay ports (a loop). A port of the range we do not hold is another
 * program's (the kernel's ephemeral ports overlap the default range): a peer on our host, relayed as any other. */
static int is_self(relay_t *r, const addr_t *a) {
  if (a->port < r->first || a->port > r->port_max) return 0;
  int slot = (a->port - r->first) / 2;
  if (slot >= r->slots || !r->s[slot].bound) return 0;
  for (int i = 0; i < r->n_ifaces; i++)
    if (same_ip(a, &r->ifaces[i])) return 1;
  return 0;
}

static inline double *sc(relay_t *r, int slot) { return r->g + G_SIZE + (size_t)slot * S_FIELDS; }

static inline void drop(relay_t *r, int slot, int reason) {
  r->g[G_DROP + reason]++;
  sc(r, slot)[S_DROPPED]++;
}

/*
 * One datagram on slot's RTP (or RTCP) port: the decisions of relay.ts onPacket.
 * Returns the socket to send it from and fills *to, or -1 when it is not relayed.
 */
static int on_packet(relay_t *r, int slot, const uint8_t *msg, int len, const addr_t *src, int on_rtcp_port,
                     double now, addr_t *to) {
  stream_t *s = &r->s[slot];
  double *c = r->g;
  double *ss = sc(r, slot);
  c[G_PIN]++;
  c[G_BIN] += len;
  if (s->dead) {
    c[G_DROP + D_NO_SESSION]++;
    return -1;
  }
  int looks_rtcp = len >= 8 && (msg[0] & 0xc0) == 0x80 && msg[1] >= 192 && msg[1] <= 223;
  int rtcp = on_rtcp_port || looks_rtcp;
  if (rtcp ? (len < 8 || (msg[0] & 0xc0) != 0x80) : !(len >= 12 && (msg[0] & 0xc0) == 0x80)) {
    c[G_DROP + D_MALFORMED]++;
    ss[S_DROPPED]++;
    return -1;
  }
  if (on_rtcp_port) {
    if (s->symmetric) {
      if (!s->rtcp_latched) {
        if (is_self(r, src)) return drop(r, slot, D_LOOP), -1;
        s->rtcp = *src;
        s->rtcp_latched = 1;
      } else if (s->strict && !(same_ip(src, &s->rtcp) && src->port == s->rtcp.port))
        return drop(r, slot, D_STRICT), -1;
    } else if (s->strict && !(same_ip(src, &s->sdp_rtcp) && src->port == s->sdp_rtcp.port))
      return drop(r, slot, D_STRICT), -1;
  } else {
    int64_t ssrc = be32(msg + (rtcp ? 4 : 8));
    if (s->symmetric) {
      if (!s->latched) {
        int stale = same_ip(src, &s->stale) && src->port == s->stale.port && ssrc == s->stale_ssrc &&
                    now < s->stale_until;
        if (!stale) {
          if (is_self(r, src)) return drop(r, slot, D_LOOP), -1;
          s->rtp = *src;
          s->latched = 1;
          s->stale.family = 0;
        } else if (s->strict)
          return drop(r, slot, D_STRICT), -1;
      } else if (s->strict && !(same_ip(src, &s->rtp) && src->port == s->rtp.port))
        return drop(r, slot, D_STRICT), -1;
    } else if (s->strict && !(same_ip(src, &s->sdp_rtp) && src->port == s->sdp_rtp.port))
      return drop(r, slot, D_STRICT), -1;
  }

  if (rtcp) {
    ss[S_RTCP_PACKETS]++;
    ss[S_RTCP_BYTES] += len;
    ss[S_LAST_RTCP] = now;
    c[G_RTCPIN]++;
    read_rtcp(s, msg, len, now);
  } else {
    ss[S_RTP_PACKETS]++;
    ss[S_RTP_BYTES] += len;
    ss[S_LAST_RTP] = now;
    track(s, msg, now);
  }

  if (s->sink < 0) return drop(r, slot, D_NO_DEST), -1;
  stream_t *d = &r->s[s->sink];
  if (!d->bound || d->dead) return drop(r, slot, D_NO_DEST), -1;
  int fd;
  if (!rtcp || d->mux) {
    fd = d->rtp_fd;
    *to = d->rtp;
  } else {
    fd = d->rtcp_fd;
    *to = d->rtcp;
  }
  if (to->port == 0 || to->family == 0) return drop(r, slot, D_NO_DEST), -1;
  if (to->family != d->family) return drop(r, slot, D_NO_DEST), -1;
  /* an SDP (or a latch) naming one of our own ports: never send into ourselves */
  if (is_self(r, to)) return drop(r, slot, D_LOOP), -1;
  c[G_POUT]++;
  c[G_BOUT] += len;
  return fd;
}

/* Drain one socket: recvmmsg batches, each relayed with sendmmsg runs per outgoing socket. */
static void drain(relay_t *r, int slot, int on_rtcp_port) {
  for (int rounds = 0; rounds < 8; rounds++) {
    stream_t *s = &r->s[slot];
    if (!s->bound) return;
    int fd = on_rtcp_port ? s->rtcp_fd : s->rtp_fd;
    /* the headers were set up once (js_create); recvmmsg changes only these */
    for (int i = 0; i < BATCH; i++) {
      r->in[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
      r->in[i].msg_hdr.msg_flags = 0;
      if (r->measure) r->in[i].msg_hdr.msg_controllen = sizeof r->ctl[i];
    }
    int n = recvmmsg(fd, r->in, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) return;
    double now = now_ms(r);
    uint64_t now_ns = 0;
    if (r->measure) {
      struct timespec t;
      clock_gettime(CLOCK_REALTIME, &t);
      now_ns = (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
    }
    int nout = 0, out_fd = -1;
    for (int i = 0; i < n; i++) {
      int len = (int)r->in[i].msg_len;
      addr_t src, to;
      addr_from_sa(&src, &r->from[i]);
      if (r->in[i].msg_hdr.msg_flags & MSG_TRUNC) {
        r->g[G_PIN]++;
        r->g[G_BIN] += len;
        if (r->s[slot].dead) r->g[G_DROP + D_NO_SESSION]++;
        else drop(r, slot, D_MALFORMED);
        continue;
      }
      int ofd = on_packet(r, slot, r->buf[i], len, &src, on_rtcp_port, now, &to);
      if (ofd < 0) continue;
      if (r->measure) {
        struct cmsghdr *cm = CMSG_FIRSTHDR(&r->in[i].msg_hdr);
        if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
          struct timespec at;
          memcpy(&at, CMSG_DATA(cm), sizeof at);
          uint64_t rx = (uint64_t)at.tv_sec * 1000000000ULL + (uint64_t)at.tv_nsec;
          uint64_t d = now_ns > rx ? now_ns - rx : 0;
          uint64_t b = d / 10000;
          r->lat[b > LAT_BUCKETS ? LAT_BUCKETS : b]++;
          r->lat_count++;
          if (d > r->lat_max_ns) r->lat_max_ns = d;
        }
      }
      if (nout > 0 && ofd != out_fd) {
        sendmmsg(out_fd, r->out, (unsigned)nout, MSG_DONTWAIT);
        nout = 0;
      }
      out_fd = ofd;
      r->iov_out[nout].iov_base = r->buf[i];
      r->iov_out[nout].iov_len = (size_t)len;
      memset(&r->out[nout].msg_hdr, 0, sizeof(struct msghdr));
      r->out[nout].msg_hdr.msg_iov = &r->iov_out[nout];
      r->out[nout].msg_hdr.msg_iovlen = 1;
      r->out[nout].msg_hdr.msg_name = &r->to[nout];
      r->out[nout].msg_hdr.msg_namelen = addr_to_sa(&to, &r->to[nout]);
      nout++;
    }
    if (nout > 0) sendmmsg(out_fd, r->out, (unsigned)nout, MSG_DONTWAIT);
    if (n < BATCH) return;
  }
}

static void *relay_main(void *arg) {
  relay_t *r = arg;
  struct epoll_event ev[256];
  for (;;) {
    int n = epoll_wait(r->epfd, ev, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    int stop = 0;
    for (int i = 0; i < n && !stop; i++) {
      uint64_t tag = ev[i].data.u64;
      /* the lock per socket, not per batch: a control call from JS waits at most one drain */
      pthread_mutex_lock(&r->mu);
      stop = r->stop;
      if (!stop && tag != UINT64_MAX) drain(r, (int)(tag >> 1), (int)(tag & 1));
      pthread_mutex_unlock(&r->mu);
    }
    if (n == 0 || stop) {
      pthread_mutex_lock(&r->mu);
      stop = r->stop;
      pthread_mutex_unlock(&r->mu);
    }
    if (stop) break;
  }
  return NULL;
}

/* ---- N-API ----------------------------------------------------------------------------- */

#define CHECK(call)                                                                                          \
  do {                                                                                                       \
    if ((call) != napi_ok) {                                                                                 \
      napi_throw_error(env, NULL, "native relay: " #call " failed");                                       \
      return NULL;                                                                                           \
    }                                                                                                        \
  } while (0)

static void close_slot(relay_t *r, stream_t *s) {
  if (!s->bound) return;
  epoll_ctl(r->epfd, EPOLL_CTL_DEL, s->rtp_fd, NULL);
  epoll_ctl(r->epfd, EPOLL_CTL_DEL, s->rtcp_fd, NULL);
  close(s->rtp_fd);
  close(s->rtcp_fd);
  s->bound = 0;
  s->rtp_fd = s->rtcp_fd = -1;
}

static void relay_stop(relay_t *r) {
  if (!r->running) return;
  pthread_mutex_lock(&r->mu);
  r->stop = 1;
  pthread_mutex_unlock(&r->mu);
  uint64_t one = 1;
  if (write(r->evfd, &one, sizeof one) < 0) { /* the thread sees stop on its next wakeup */
  }
  pthread_join(r->thread, NULL);
  r->running = 0;
  for (int i = 0; i < r->slots; i++) close_slot(r, &r->s[i]);
  close(r->epfd);
  close(r->evfd);
}

static void relay_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  relay_t *r = data;
  relay_stop(r);
  pthread_mutex_destroy(&r->mu);
  free(r->s);
  free(r);
}

static void counters_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static relay_t *get_relay(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, NULL, "native relay: bad handle");
    return NULL;
  }
  return p;
}

static int get_int(napi_env env, napi_value v, int *out) {
  int32_t x;
  if (napi_get_value_int32(env, v, &x) != napi_ok) return 0;
  *out = x;
  return 1;
}

static int get_slot(napi_env env, relay_t *r, napi_value v, int *slot) {
  if (!get_int(env, v, slot) || *slot < 0 || *slot >= r->slots) {
    napi_throw_range_error(env, NULL, "native relay: bad slot");
    return 0;
  }
  return 1;
}

/* create(portMin, portMax, ifaceAddrs: string[], manualClock: boolean) -> [handle, Float64Array] */
static napi_value js_create(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int pmin, pmax;
  bool manual = false, measure = false;
  if (argc < 4 || !get_int(env, argv[0], &pmin) || !get_int(env, argv[1], &pmax)) {
    napi_throw_type_error(env, NULL, "native relay: create(portMin, portMax, addrs, manualClock)");
    return NULL;
  }
  napi_get_value_bool(env, argv[3], &manual);
  if (argc >= 5) napi_get_value_bool(env, argv[4], &measure);
  relay_t *r = calloc(1, sizeof *r);
  if (!r) {
    napi_throw_error(env, NULL, "native relay: out of memory");
    return NULL;
  }
  r->port_min = pmin;
  r->port_max = pmax;
  r->first = pmin % 2 == 0 ? pmin : pmin + 1;
  r->slots = pmax >= r->first + 1 ? (pmax - r->first + 1) / 2 : 0;
  r->manual_clock = manual;
  r->measure = measure;
  uint32_t n_if = 0;
  napi_get_array_length(env, argv[2], &n_if);
  for (uint32_t i = 0; i < n_if && i < MAX_IFACES; i++) {
    napi_value e;
    char text[64];
    size_t l;
    if (napi_get_element(env, argv[2], i, &e) != napi_ok) continue;
    if (napi_get_value_string_utf8(env, e, text, sizeof text, &l) != napi_ok) continue;
    addr_parse(&r->ifaces[r->n_ifaces], text);
    if (r->ifaces[r->n_ifaces].family) r->n_ifaces++;
  }
  r->s = calloc((size_t)(r->slots > 0 ? r->slots : 1), sizeof(stream_t));
  size_t gbytes = sizeof(double) * (G_SIZE + (size_t)r->slots * S_FIELDS);
  r->g = calloc(1, gbytes);
  if (!r->s || !r->g) {
    free(r->s);
    free(r->g);
    free(r);
    napi_throw_error(env, NULL, "native relay: out of memory");
    return NULL;
  }
  for (int i = 0; i < r->slots; i++) {
    r->s[i].rtp_fd = r->s[i].rtcp_fd = -1;
    r->s[i].sink = -1;
    r->s[i].ssrc = -1;
    r->s[i].stale_ssrc = -1;
    r->s[i].symmetric = 1;
    r->s[i].clock_rate = 8000;
    r->s[i].r_rtt_ms = -1;
  }
  for (int i = 0; i < BATCH; i++) {
    r->iov_in[i].iov_base = r->buf[i];
    r->iov_in[i].iov_len = BUF;
    r->in[i].msg_hdr.msg_iov = &r->iov_in[i];
    r->in[i].msg_hdr.msg_iovlen = 1;
    r->in[i].msg_hdr.msg_name = &r->from[i];
    if (measure) r->in[i].msg_hdr.msg_control = r->ctl[i];
  }
  pthread_mutex_init(&r->mu, NULL);
  r->epfd = epoll_create1(EPOLL_CLOEXEC);
  r->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
  if (r->epfd < 0 || r->evfd < 0 || epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->evfd, &ev) != 0 ||
      pthread_create(&r->thread, NULL, relay_main, r) != 0) {
    int e = errno;
    if (r->epfd >= 0) close(r->epfd);
    if (r->evfd >= 0) close(r->evfd);
    pthread_mutex_destroy(&r->mu);
    free(r->s);
    free(r->g);
    free(r);
    napi_throw_error(env, NULL, strerror(e));
    return NULL;
  }
  r->running = 1;
  napi_value handle, ab, view, out;
  double *g = r->g;
  CHECK(napi_create_external(env, r, relay_finalize, NULL, &handle));
  CHECK(napi_create_external_arraybuffer(env, g, gbytes, counters_finalize, NULL, &ab));
  CHECK(napi_create_typedarray(env, napi_float64_array, gbytes / sizeof(double), ab, 0, &view));
  CHECK(napi_create_array_with_length(env, 2, &out));
  CHECK(napi_set_element(env, out, 0, handle));
  CHECK(napi_set_element(env, out, 1, view));
  return out;
}

static int bind_one(int family, const addr_t *a, int port, int bufsize, int measure) {
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  if (family == AF_INET6) {
    int one = 1;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  if (measure) {
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
  }
  if (bufsize > 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize);
  }
  addr_t b = *a;
  b.port = (uint16_t)port;
  struct sockaddr_storage ss;
  socklen_t sl = addr_to_sa(&b, &ss);
  if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

/* open(h, slot, address, socketBufferBytes): binds the pair (port, port+1) of slot on address. */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  relay_t *r = get_relay(env, argv[0]);
  int slot, bufsize = 0;
  if (!r || !get_slot(env, r, argv[1], &slot)) return NULL;
  char text[64];
  size_t l;
  CHECK(napi_get_value_string_utf8(env, argv[2], text, sizeof text, &l));
  get_int(env, argv[3], &bufsize);
  addr_t a;
  addr_parse(&a, text);
  if (!a.family) {
    napi_throw_type_error(env, NULL, "native relay: bad address");
    return NULL;
  }
  int port = r->first + 2 * slot;
  pthread_mutex_lock(&r->mu);
  stream_t *s = &r->s[slot];
  close_slot(r, s);
  int e = 0;
  int rtp = bind_one(a.family, &a, port, bufsize, r->measure);
  int rtcp = rtp < 0 ? -1 : bind_one(a.family, &a, port + 1, bufsize, r->measure);
  if (rtp < 0) e = -rtp;
  else if (rtcp < 0) {
    e = -rtcp;
    close(rtp);
  }
  if (!e) {
    memset(s, 0, sizeof *s);
    s->rtp_fd = rtp;
    s->rtcp_fd = rtcp;
    s->family = a.family;
    s->bound = 1;
    s->sink = -1;
    s->ssrc = -1;
    s->stale_ssrc = -1;
    s->symmetric = 1;
    s->clock_rate = 8000;
    s->r_rtt_ms = -1;
    memset(sc(r, slot), 0, sizeof(double) * S_FIELDS);
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.u64 = (uint64_t)slot << 1;
    epoll_ctl(r->epfd, EPOLL_CTL_ADD, rtp, &ev);
    ev.data.u64 = ((uint64_t)slot << 1) | 1;
    epoll_ctl(r->epfd, EPOLL_CTL_ADD, rtcp, &ev);
  }
  pthread_mutex_unlock(&r->mu);
  if (e) {
    char msg[128];
    snprintf(msg, sizeof msg, "bind %s:%d: %s", text, rtp < 0 ? port : port + 1, strerror(e));
    napi_value m, code, err;
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
    napi_create_string_utf8(env, e == EADDRINUSE ? "EADDRINUSE" : "EBIND", NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, m, &err);
    napi_throw(env, err);
  }
  return NULL;
}

/* close(h, slot) */
static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  relay_t *r = get_relay(env, argv[0]);
  int slot;
  if (!r || !get_slot(env, r, argv[1], &slot)) return NULL;
  pthread_mutex_lock(&r->mu);
  close_slot(r, &r->s[slot]);
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

static napi_value js_lock(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  relay_t *r = get_relay(env, argv[0]);
  if (r) pthread_mutex_lock(&r->mu);
  return NULL;
}

static napi_value js_unlock(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  relay_t *r = get_relay(env, argv[0]);
  if (r) pthread_mutex_unlock(&r->mu);
  return NULL;
}

/* destroy(h): stops the thread, closes every socket. */
static napi_value js_destroy(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  relay_t *r = get_relay(env, argv[0]);
  if (r) relay_stop(r);
  return NULL;
}

/* -- field access by name on the JS RelayStream -- */

static double getnum(napi_env env, napi_value o, const char *k) {
  napi_value v;
  double d = 0;
  if (napi_get_named_property(env, o, k, &v) == napi_ok) napi_get_value_double(env, v, &d);
  return d;
}
static int getbool(napi_env env, napi_value o, const char *k) {
  napi_value v;
  bool b = false;
  if (napi_get_named_property(env, o, k, &v) == napi_ok) napi_get_value_bool(env, v, &b);
  return b;
}
static void getaddr(napi_env env, napi_value o, const char *ka, const char *kp, addr_t *a) {
  napi_value v;
  char text[64] = "";
  size_t l;
  if (napi_get_named_property(env, o, ka, &v) == napi_ok)
    if (napi_get_value_string_utf8(env, v, text, sizeof text, &l) != napi_ok) text[0] = 0;
  addr_parse(a, text);
  a->port = (uint16_t)getnum(env, o, kp);
}
static void setnum(napi_env env, napi_value o, const char *k, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  napi_set_named_property(env, o, k, v);
}
static void setbool(napi_env env, napi_value o, const char *k, int b) {
  napi_value v;
  napi_get_boolean(env, b != 0, &v);
  napi_set_named_property(env, o, k, v);
}
static void setaddr(napi_env env, napi_value o, const char *ka, const char *kp, const addr_t *a) {
  char text[64];
  addr_text(a, text, sizeof text);
  napi_value v;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, o, ka, v);
  setnum(env, o, kp, a->family ? a->port : 0);
}

/* configure(h, slot, stream, sinkSlot): the JS-owned fields (call with the lock held). */
static napi_value js_configure(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  relay_t *r = get_relay(env, argv[0]);
  int slot, sink = -1;
  if (!r || !get_slot(env, r, argv[1], &slot)) return NULL;
  get_int(env, argv[3], &sink);
  stream_t *s = &r->s[slot];
  napi_value o = argv[2];
  s->dead = getbool(env, o, "dead");
  s->mux = getbool(env, o, "mux");
  s->symmetric = getbool(env, o, "symmetric");
  s->strict = getbool(env, o, "strict");
  s->clock_rate = getnum(env, o, "clockRate");
  if (s->clock_rate <= 0) s->clock_rate = 8000;
  getaddr(env, o, "sdpAddress", "sdpRtpPort", &s->sdp_rtp);
  getaddr(env, o, "sdpRtcpAddress", "sdpRtcpPort", &s->sdp_rtcp);
  s->sink = sink >= 0 && sink < r->slots ? sink : -1;
  return NULL;
}

/* push(h, slot, stream): the latch state JS changed (after a pull, with the lock held). */
static napi_value js_push(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  relay_t *r = get_relay(env, argv[0]);
  int slot;
  if (!r || !get_slot(env, r, argv[1], &slot)) return NULL;
  stream_t *s = &r->s[slot];
  napi_value o = argv[2];
  getaddr(env, o, "rtpAddr", "rtpPort", &s->rtp);
  getaddr(env, o, "rtcpAddr", "rtcpPort", &s->rtcp);
  s->latched = getbool(env, o, "latched");
  s->rtcp_latched = getbool(env, o, "rtcpLatched");
  getaddr(env, o, "staleAddr", "stalePort", &s->stale);
  s->stale_ssrc = (int64_t)getnum(env, o, "staleSsrc");
  s->stale_until = getnum(env, o, "staleUntil");
  return NULL;
}

/* pull(h, slot, stream): the packet-side state into the JS object (with the lock held). */
static napi_value js_pull(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  relay_t *r = get_relay(env, argv[0]);
  int slot;
  if (!r || !get_slot(env, r, argv[1], &slot)) return NULL;
  stream_t *s = &r->s[slot];
  double *ss = sc(r, slot);
  napi_value o = argv[2];
  setaddr(env, o, "rtpAddr", "rtpPort", &s->rtp);
  setaddr(env, o, "rtcpAddr", "rtcpPort", &s->rtcp);
  setbool(env, o, "latched", s->latched);
  setbool(env, o, "rtcpLatched", s->rtcp_latched);
  setaddr(env, o, "staleAddr", "stalePort", &s->stale);
  setnum(env, o, "staleSsrc", (double)s->stale_ssrc);
  setnum(env, o, "staleUntil", s->stale_until);
  setnum(env, o, "rtpPackets", ss[S_RTP_PACKETS]);
  setnum(env, o, "rtpBytes", ss[S_RTP_BYTES]);
  setnum(env, o, "rtcpPackets", ss[S_RTCP_PACKETS]);
  setnum(env, o, "rtcpBytes", ss[S_RTCP_BYTES]);
  setnum(env, o, "dropped", ss[S_DROPPED]);
  setnum(env, o, "lastRtp", ss[S_LAST_RTP]);
  setnum(env, o, "lastRtcp", ss[S_LAST_RTCP]);
  setnum(env, o, "ssrc", (double)s->ssrc);
  setnum(env, o, "baseSeq", s->base_seq);
  setnum(env, o, "maxSeq", s->max_seq);
  setnum(env, o, "cycles", s->cycles);
  setnum(env, o, "received", s->received);
  setnum(env, o, "lostBefore", s->lost_before);
  setnum(env, o, "reordered", s->reordered);
  setnum(env, o, "jitter", s->jitter);
  setnum(env, o, "transit", s->transit);
  setbool(env, o, "hasTransit", s->has_transit);
  napi_value rep;
  if (napi_get_named_property(env, o, "report", &rep) == napi_ok) {
    setnum(env, rep, "fractionLost", s->r_fraction_lost);
    setnum(env, rep, "cumulativeLost", s->r_cumulative_lost);
    setnum(env, rep, "jitter", s->r_jitter);
    setnum(env, rep, "rttMs", s->r_rtt_ms);
    setnum(env, rep, "reports", s->r_reports);
    setnum(env, rep, "lastSrNtp", s->r_last_sr_ntp);
    setnum(env, rep, "lastSrAt", s->r_last_sr_at);
  }
  return NULL;
}

/* latency(h, reset) -> [count, p50, p99, p999, max] in ms of residence time (measure on), then reset. */
static napi_value js_latency(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  relay_t *r = get_relay(env, argv[0]);
  if (!r) return NULL;
  bool reset = false;
  if (argc >= 2) napi_get_value_bool(env, argv[1], &reset);
  double out[5] = {0, 0, 0, 0, 0};
  pthread_mutex_lock(&r->mu);
  out[0] = (double)r->lat_count;
  const double q[3] = {0.5, 0.99, 0.999};
  for (int k = 0; k < 3 && r->lat_count > 0; k++) {
    uint64_t want = (uint64_t)ceil(q[k] * (double)r->lat_count), seen = 0;
    for (int b = 0; b <= LAT_BUCKETS; b++) {
      seen += r->lat[b];
      if (seen >= want) {
        out[1 + k] = (b + 1) * 0.01; /* the bucket's upper bound, ms */
        break;
      }
    }
  }
  out[4] = r->lat_max_ns / 1e6;
  if (reset) {
    memset(r->lat, 0, sizeof r->lat);
    r->lat_count = 0;
    r->lat_max_ns = 0;
  }
  pthread_mutex_unlock(&r->mu);
  napi_value arr;
  CHECK(napi_create_array_with_length(env, 5, &arr));
  for (uint32_t i = 0; i < 5; i++) {
    napi_value v;
    napi_create_double(env, out[i], &v);
    napi_set_element(env, arr, i, v);
  }
  return arr;
}

/*
 * schedule(h, policy, priority): the relay thread's scheduling policy, as rtpengine's
 * --scheduling/--priority: "fifo" or "rr" with a priority of 1-99 (real time: the thread is
 * not made to wait for other processes' time slices on its core), "other", "batch" or
 * "idle" with 0. Throws with the system's reason (EPERM without CAP_SYS_NICE).
 */
static napi_value js_schedule(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  relay_t *r = argc >= 3 ? get_relay(env, argv[0]) : NULL;
  if (!r) return NULL;
  char name[16];
  size_t l;
  int prio;
  if (napi_get_value_string_utf8(env, argv[1], name, sizeof name, &l) != napi_ok || !get_int(env, argv[2], &prio)) {
    napi_throw_type_error(env, NULL, "native relay: schedule(handle, policy, priority)");
    return NULL;
  }
  int policy = strcmp(name, "fifo") == 0    ? SCHED_FIFO
               : strcmp(name, "rr") == 0    ? SCHED_RR
               : strcmp(name, "other") == 0 ? SCHED_OTHER
               : strcmp(name, "batch") == 0 ? SCHED_BATCH
               : strcmp(name, "idle") == 0  ? SCHED_IDLE
                                            : -1;
  if (policy < 0 || prio < sched_get_priority_min(policy) || prio > sched_get_priority_max(policy)) {
    napi_throw_range_error(env, NULL, "native relay: no such policy, or a priority out of its range");
    return NULL;
  }
  struct sched_param sp = {.sched_priority = prio};
  int e = pthread_setschedparam(r->thread, policy, &sp);
  if (e != 0) {
    napi_throw_error(env, NULL, strerror(e));
    return NULL;
  }
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor d[] = {
      {"create", NULL, js_create, NULL, NULL, NULL, napi_default, NULL},
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"lock", NULL, js_lock, NULL, NULL, NULL, napi_default, NULL},
      {"unlock", NULL, js_unlock, NULL, NULL, NULL, napi_default, NULL},
      {"configure", NULL, js_configure, NULL, NULL, NULL, napi_default, NULL},
      {"push", NULL, js_push, NULL, NULL, NULL, napi_default, NULL},
      {"pull", NULL, js_pull, NULL, NULL, NULL, napi_default, NULL},
      {"destroy", NULL, js_destroy, NULL, NULL, NULL, napi_default, NULL},
      {"latency", NULL, js_latency, NULL, NULL, NULL, napi_default, NULL},
      {"schedule", NULL, js_schedule, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof d / sizeof d[0], d);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
