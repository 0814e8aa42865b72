#!/usr/bin/env node
// Builds the UDP sender thread (udp-sender.c, an N-API addon) into build/udp-sender.node
// (libs/platform/native/build-addon.mjs: the C compiler and Node's own headers).
// Runs as the package's install script (npm ci) and on demand from
// src/transport/udp-sender.ts. Never fails the install: without a compiler or headers
// it says why and exits 0, and UDP sends go through dgram.
import { join } from 'node:path';
import { buildAddon } from '../../platform/native/build-addon.mjs';

const here = import.meta.dirname;

buildAddon({
  name: 'sip native',
  source: join(here, 'udp-sender.c'),
  out: join(here, 'build', 'udp-sender.node'),
  fallback: "UDP sends go through node:dgram's send",
});
