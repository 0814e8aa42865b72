/**
 * The native relay engine (native/relay.c, an N-API addon): the hot path on its
 * own thread (epoll, recvmmsg/sendmmsg), the control plane staying in relay.ts.
 * Built by the package's install script (native/build.mjs); when the built file
 * is missing or older than relay.c it is built here once, and when that is not possible either the
 * caller falls back to the JS relay.
 */
import { join } from 'node:path';
import { loadAddon } from '@switchboard/platform';

/** The addon's functions (see native/relay.c for what each does). */
export interface NativeAddon {
  /** A relay thread for the port range; returns its handle and the counters it writes. */
  create(
    portMin: number,
    portMax: number,
    ifaceAddrs: string[],
    manualClock: boolean,
    measure?: boolean,
  ): [unknown, Float64Array];
  /** Bind the pair (port, port+1) of slot on address; throws (code EADDRINUSE, ...) when it cannot. */
  open(h: unknown, slot: number, address: string, socketBufferBytes: number): void;
  close(h: unknown, slot: number): void;
  lock(h: unknown): void;
  unlock(h: unknown): void;
  /** The stream's JS-owned fields (dead, mux, symmetric, strict, clockRate, SDP addresses) and its sink. */
  configure(h: unknown, slot: number, stream: object, sinkSlot: number): void;
  /** The stream's latch state (rtpAddr..., latched, stale...) as JS changed it. */
  push(h: unknown, slot: number, stream: object): void;
  /** The stream's packet-side state into the JS object. */
  pull(h: unknown, slot: number, stream: object): void;
  destroy(h: unknown): void;
  /** With measure on: [count, p50, p99, p99.9, max] of the residence time in ms (10 us buckets); reset clears it. */
  latency(h: unknown, reset: boolean): [number, number, number, number, number];
  /** The relay thread's scheduling policy and priority (pthread_setschedparam); throws with the system's reason. */
  schedule(h: unknown, policy: string, priority: number): void;
}

/** Layout of the counters array (native/relay.c). */
export const G = {
  now: 0,
  packetsIn: 1,
  packetsOut: 2,
  bytesIn: 3,
  bytesOut: 4,
  rtcpIn: 5,
  dropped: 6,
  size: 16,
  perSlot: 8,
  lastRtp: 5,
  lastRtcp: 6,
} as const;

const NATIVE = join(import.meta.dirname, '..', 'native');
export const DEFAULT_ADDON = join(NATIVE, 'build', 'relay.node');

/** The addon at path (default: the package's build, built first when missing or stale); an Error when it cannot be had. */
export function loadNative(path = DEFAULT_ADDON): NativeAddon | Error {
  const build =
    path === DEFAULT_ADDON
      ? { source: join(NATIVE, 'relay.c'), script: join(NATIVE, 'build.mjs') }
      : undefined;
  return loadAddon<NativeAddon>({ path, build, exportName: 'create' });
}
