// UDP sends on their own thread (an N-API addon; libs/sip/src/transport/udp-sender.ts).
//
// On a loopback or a virtual machine a datagram's sendmsg costs the event loop far more than
// building the message (17-22 us each in the proxy, the kernel delivering it and waking the
// receiver). Here the event loop only copies the datagram into a queue; once per event-loop
// turn it wakes this thread, which sends what is queued with sendmmsg, in queue order, on the
// socket's own descriptor (so the source address and port are the socket's).
//
// A send that asked for its outcome carries a sequence number (> 0, increasing): after each
// round that held such sends the thread reports, through a thread-safe function, the highest
// one it finished and the failures among them (sequence number and errno).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <node_api.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH 64
/* How long a full socket buffer may hold one datagram before it counts as failed (EAGAIN). */
#define FULL_WAIT_MS 1000

typedef struct msg {
  struct msg *next;
  double seq; /* 0: nobody waits for the outcome */
  socklen_t tolen;
  struct sockaddr_storage to;
  size_t len;
  char data[];
} msg;

typedef struct {
  double seq;
  int err;
} failure;

typedef struct {
  double done; /* every send up to this sequence number is finished */
  int n;
  failure f[];
} report;

typedef struct {
  int fd;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  msg *head, *tail; /* queued, not yet taken by the thread */
  int closing, closed;
  napi_threadsafe_function tsfn;
  double sent, failed; /* under mu */
} sender;

/* Sends n datagrams, retrying while the socket buffer is full; failures of those that wait for it go to rep. */
static void send_batch(sender *s, msg **batch, int n, report *rep) {
  struct mmsghdr mm[BATCH];
  struct iovec io[BATCH];
  for (int i = 0; i < n; i++) {
    io[i].iov_base = batch[i]->data;
    io[i].iov_len = batch[i]->len;
    memset(&mm[i].msg_hdr, 0, sizeof mm[i].msg_hdr);
    mm[i].msg_hdr.msg_name = &batch[i]->to;
    mm[i].msg_hdr.msg_namelen = batch[i]->tolen;
    mm[i].msg_hdr.msg_iov = &io[i];
    mm[i].msg_hdr.msg_iovlen = 1;
  }
  int off = 0, waited = 0, sent = 0, failed = 0;
  while (off < n) {
    int r = sendmmsg(s->fd, mm + off, n - off, 0);
    if (r > 0) {
      off += r;
      sent += r;
      waited = 0;
      continue;
    }
    int err = r == 0 ? EIO : errno;
    if (err == EINTR) continue;
    if ((err == EAGAIN || err == EWOULDBLOCK) && waited < FULL_WAIT_MS) {
      struct pollfd p = {s->fd, POLLOUT, 0};
      poll(&p, 1, 100);
      waited += 100;
      continue;
    }
    /* batch[off] failed: it is skipped, the rest go on */
    if (batch[off]->seq > 0) rep->f[rep->n++] = (failure){batch[off]->seq, err};
    failed++;
    off++;
    waited = 0;
  }
  pthread_mutex_lock(&s->mu);
  s->sent += sent;
  s->failed += failed;
  pthread_mutex_unlock(&s->mu);
}

static void *run(void *arg) {
  sender *s = arg;
  msg *batch[BATCH];
  for (;;) {
    pthread_mutex_lock(&s->mu);
    while (!s->head && !s->closing) pthread_cond_wait(&s->cv, &s->mu);
    msg *list = s->head;
    s->head = s->tail = NULL;
    int closing = s->closing;
    pthread_mutex_unlock(&s->mu);
    if (!list) {
      if (closing) return NULL;
      continue;
    }
    int total = 0;
    for (msg *m = list; m; m = m->next) total++;
    report *rep = malloc(sizeof(report) + sizeof(failure) * total);
    if (!rep) {
      /* no memory for the report: the datagrams are dropped, as a full socket buffer would */
      for (msg *m = list, *next; m; m = next) {
        next = m->next;
        free(m);
      }
      pthread_mutex_lock(&s->mu);
      s->failed += total;
      pthread_mutex_unlock(&s->mu);
      continue;
    }
    rep->n = 0;
    rep->done = 0;
    while (list) {
      int n = 0;
      while (list && n < BATCH) {
        batch[n++] = list;
        if (list->seq > rep->done) rep->done = list->seq;
        list = list->next;
      }
      send_batch(s, batch, n, rep);
      for (int i = 0; i < n; i++) free(batch[i]);
    }
    if (rep->done == 0 || napi_call_threadsafe_function(s->tsfn, rep, napi_tsfn_nonblocking) != napi_ok) free(rep);
  }
}

/* On the event loop: the report to the JS callback (done, [seq, errno, seq, errno, ...] or null). */
static void deliver(napi_env env, napi_value cb, void *context, void *data) {
  report *rep = data;
  if (env && cb) {
    napi_value args[2], undef;
    napi_get_undefined(env, &undef);
    napi_create_double(env, rep->done, &args[0]);
    if (rep->n == 0) {
      napi_get_null(env, &args[1]);
    } else {
      napi_create_array_with_length(env, rep->n * 2, &args[1]);
      for (int i = 0; i < rep->n; i++) {
        napi_value seq, err;
        napi_create_double(env, rep->f[i].seq, &seq);
        napi_create_int32(env, rep->f[i].err, &err);
        napi_set_element(env, args[1], i * 2, seq);
        napi_set_element(env, args[1], i * 2 + 1, err);
      }
    }
    napi_call_function(env, undef, cb, 2, args, NULL);
  }
  free(rep);
}

/* Stops the thread once everything queued is sent; the descriptor stays open (the socket owns it). */
static void stop(napi_env env, sender *s) {
  if (s->closed) return;
  pthread_mutex_lock(&s->mu);
  s->closing = 1;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->thread, NULL);
  s->closed = 1;
  napi_release_threadsafe_function(s->tsfn, napi_tsfn_release);
}

static void finalize(napi_env env, void *data, void *hint) {
  sender *s = data;
  stop(env, s);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s);
}

#define ARGS(n)                                                   \
  size_t argc = n;                                                \
  napi_value argv[n];                                             \
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);           \
  if (argc < n) {                                                 \
    napi_throw_type_error(env, NULL, "missing arguments");        \
    return NULL;                                                  \
  }

static sender *handle(napi_env env, napi_value v) {
  sender *s = NULL;
  if (napi_get_value_external(env, v, (void **)&s) != napi_ok || !s) napi_throw_type_error(env, NULL, "not a sender");
  return s;
}

/* open(fd, onReport): a sender thread for the socket descriptor fd. */
static napi_value js_open(napi_env env, napi_callback_info info) {
  ARGS(2);
  int32_t fd;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "fd must be a descriptor");
    return NULL;
  }
  sender *s = calloc(1, sizeof *s);
  s->fd = fd;
  napi_value name;
  napi_create_string_utf8(env, "udp-sender", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, NULL, NULL, NULL, deliver, &s->tsfn) != napi_ok) {
    free(s);
    napi_throw_error(env, NULL, "cannot create the report function");
    return NULL;
  }
  /* reports never keep the process alive on their own */
  napi_unref_threadsafe_function(env, s->tsfn);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  if (pthread_create(&s->thread, NULL, run, s) != 0) {
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
    free(s);
    napi_throw_error(env, NULL, "cannot start the sender thread");
    return NULL;
  }
  napi_value ext;
  napi_create_external(env, s, finalize, NULL, &ext);
  return ext;
}

/* queue(h, buffer, port, address, seq): true when queued; false when the address is not a numeric one it reads. */
static napi_value js_queue(napi_env env, napi_callback_info info) {
  ARGS(5);
  sender *s = handle(env, argv[0]);
  if (!s) return NULL;
  void *data;
  size_t len;
  int32_t port;
  double seq;
  char addr[INET6_ADDRSTRLEN + 1];
  size_t alen;
  if (napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok || napi_get_value_int32(env, argv[2], &port) != napi_ok ||
      napi_get_value_string_latin1(env, argv[3], addr, sizeof addr, &alen) != napi_ok ||
      napi_get_value_double(env, argv[4], &seq) != napi_ok || port < 0 || port > 65535) {
    napi_throw_type_error(env, NULL, "queue(handle, buffer, port, address, seq)");
    return NULL;
  }
  napi_value result;
  msg *m = malloc(sizeof(msg) + len);
  if (!m) {
    napi_throw_error(env, "ENOMEM", "no memory to queue a datagram");
    return NULL;
  }
  memset(&m->to, 0, sizeof m->to);
  struct sockaddr_in *a4 = (struct sockaddr_in *)&m->to;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&m->to;
  if (alen < sizeof addr - 1 && inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    m->tolen = sizeof *a4;
  } else if (alen < sizeof addr - 1 && inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    m->tolen = sizeof *a6;
  } else {
    free(m);
    napi_get_boolean(env, false, &result);
    return result;
  }
  m->next = NULL;
  m->seq = seq;
  m->len = len;
  memcpy(m->data, data, len);
  pthread_mutex_lock(&s->mu);
  int open = !s->closing;
  if (open) {
    if (s->tail) s->tail->next = m;
    else s->head = m;
    s->tail = m;
  }
  pthread_mutex_unlock(&s->mu);
  if (!open) free(m);
  napi_get_boolean(env, open, &result);
  return result;
}

/* flush(h): wake the thread for what is queued. */
static napi_value js_flush(napi_env env, napi_callback_info info) {
  ARGS(1);
  sender *s = handle(env, argv[0]);
  if (!s) return NULL;
  pthread_mutex_lock(&s->mu);
  if (s->head) pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* close(h): send what is queued, then stop the thread (before the socket closes its descriptor). */
static napi_value js_close(napi_env env, napi_callback_info info) {
  ARGS(1);
  sender *s = handle(env, argv[0]);
  if (s) stop(env, s);
  return NULL;
}

/* stats(h): [datagrams sent, datagrams failed]. */
static napi_value js_stats(napi_env env, napi_callback_info info) {
  ARGS(1);
  sender *s = handle(env, argv[0]);
  if (!s) return NULL;
  pthread_mutex_lock(&s->mu);
  double sent = s->sent, failed = s->failed;
  pthread_mutex_unlock(&s->mu);
  napi_value arr, v;
  napi_create_array_with_length(env, 2, &arr);
  napi_create_double(env, sent, &v);
  napi_set_element(env, arr, 0, v);
  napi_create_double(env, failed, &v);
  napi_set_element(env, arr, 1, v);
  return arr;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor d[] = {
      {"open", 0, js_open, 0, 0, 0, napi_default, 0},   {"queue", 0, js_queue, 0, 0, 0, napi_default, 0},
      {"flush", 0, js_flush, 0, 0, 0, napi_default, 0}, {"close", 0, js_close, 0, 0, 0, napi_default, 0},
      {"stats", 0, js_stats, 0, 0, 0, napi_default, 0},
  };
  napi_define_properties(env, exports, sizeof d / sizeof d[0], d);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
