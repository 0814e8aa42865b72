/**
 * UDP sends on a native thread (native/udp-sender.c): the event loop copies each datagram
 * into a queue and wakes the thread once per event-loop turn (setImmediate); the thread
 * sends the turn's datagrams with sendmmsg on the socket's own descriptor, in order. On
 * loopback and virtual machines a sendmsg costs the event loop 10-20 µs (the kernel delivers
 * the datagram and wakes the receiver there and then); this takes it off the loop.
 *
 * A send's callback gets its outcome as with dgram (an Error with the errno's code, or
 * nothing) once the thread has sent it. Without the addon (no C compiler at install, not
 * Linux) `open` returns undefined and the transport uses dgram's send.
 */
import type * as dgram from 'node:dgram';
import { join } from 'node:path';
import { getSystemErrorName } from 'node:util';
import { loadAddon } from '@switchboard/platform';
import type { SendCallback } from './types';

interface Addon {
  open(fd: number, onReport: (done: number, failures: number[] | null) => void): unknown;
  queue(h: unknown, data: Buffer, port: number, address: string, seq: number): boolean;
  flush(h: unknown): void;
  close(h: unknown): void;
  stats(h: unknown): [sent: number, failed: number];
}

const NATIVE = join(import.meta.dirname, '..', '..', 'native');

/** The addon, or the reason it is not there. */
export const loadUdpSenderAddon = (): Addon | Error =>
  loadAddon<Addon>({
    path: join(NATIVE, 'build', 'udp-sender.node'),
    build: { source: join(NATIVE, 'udp-sender.c'), script: join(NATIVE, 'build.mjs') },
    exportName: 'queue',
  });

/** The error a failed send reports, shaped as dgram's (code, errno, syscall). */
function sendError(errno: number): Error {
  const code = getSystemErrorName(-errno);
  return Object.assign(new Error(`send ${code}`), { code, errno: -errno, syscall: 'send' });
}

/**
 * The socket's descriptor. dgram has no public accessor: its handle (UDPWrap, which has `fd`
 * on Unix) sits in the socket's internal state, under a symbol described 'state symbol'
 * (lib/internal/dgram.js; `socket._handle` reads the same but warns DEP0112).
 */
function descriptorOf(socket: dgram.Socket): number | undefined {
  const state = Object.getOwnPropertySymbols(socket).find((k) => k.description === 'state symbol');
  const fd = state && (socket as unknown as Record<symbol, { handle?: { fd?: unknown } }>)[state]?.handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** Senders with datagrams queued in this event-loop turn: woken together by one setImmediate. */
const toFlush = new Set<UdpSendThread>();
let flushScheduled = false;
function flushAll(): void {
  flushScheduled = false;
  for (const s of toFlush) s.flush();
  toFlush.clear();
}

export class UdpSendThread {
  private seq = 0;
  private closed = false;

  private constructor(
    private readonly addon: Addon,
    private readonly h: unknown,
    /** Callbacks of sends in flight, by sequence number (ascending: a Map keeps insertion order). */
    private readonly waiting: Map<number, SendCallback>,
  ) {}

  /** A sender thread for the bound socket, or undefined when the addon or the descriptor cannot be had. */
  static open(socket: dgram.Socket, addon: Addon | Error = loadUdpSenderAddon()): UdpSendThread | undefined {
    if (addon instanceof Error) return undefined;
    const fd = descriptorOf(socket);
    if (fd === undefined) return undefined;
    const waiting = new Map<number, SendCallback>();
    const h = addon.open(fd, (done, failures) => report(waiting, done, failures));
    return new UdpSendThread(addon, h, waiting);
  }

  /** Queues the datagram; false when it is not taken (closed, or an address the thread does not read): send it otherwise. */
  send(data: Buffer, port: number, address: string, cb?: SendCallback): boolean {
    if (this.closed) return false;
    const seq = cb ? ++this.seq : 0;
    if (!this.addon.queue(this.h, data, port, address, seq)) return false;
    if (cb) this.waiting.set(seq, cb);
    toFlush.add(this);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushAll);
    }
    return true;
  }

  flush(): void {
    if (!this.closed) this.addon.flush(this.h);
  }

  /** [datagrams sent, datagrams failed] so far. */
  stats(): [number, number] {
    return this.addon.stats(this.h);
  }

  /** Sends what is queued and stops the thread: call it before the socket closes. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    toFlush.delete(this);
    this.addon.close(this.h);
  }
}

/** A round's report from the thread: failed sends get their error, the others up to `done` their success. */
function report(waiting: Map<number, SendCallback>, done: number, failures: number[] | null): void {
  if (failures)
    for (let i = 0; i < failures.length; i += 2) {
      const cb = waiting.get(failures[i]);
      waiting.delete(failures[i]);
      cb?.(sendError(failures[i + 1]));
    }
  for (const [seq, cb] of waiting) {
    if (seq > done) break;
    waiting.delete(seq);
    cb();
  }
}
