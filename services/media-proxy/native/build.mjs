#!/usr/bin/env node
// Builds the native relay engine (relay.c, an N-API addon) into build/relay.node
// (libs/platform/native/build-addon.mjs: the C compiler and Node's own headers).
// Runs as the media-proxy package's install script (npm ci) and on demand from
// src/native.ts. Never fails the install: without a compiler or headers it says
// why and exits 0, and the service runs the JS relay.
import { join } from 'node:path';
import { buildAddon } from '../../../libs/platform/native/build-addon.mjs';

const here = import.meta.dirname;

export const build = ({ quiet = false } = {}) =>
  buildAddon({
    name: 'media-proxy native',
    source: join(here, 'relay.c'),
    out: join(here, 'build', 'relay.node'),
    fallback: 'the JS relay will run',
    quiet,
  });

if (process.argv[1] && import.meta.filename === process.argv[1]) build();
