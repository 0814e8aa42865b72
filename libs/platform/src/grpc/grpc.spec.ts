import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { connectivityState, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import pino from 'pino';
import {
  AuthorizeResponse_Reason,
  RatingClient,
  RatingService,
  type AuthorizeRequest,
  type AuthorizeResponse,
} from '@switchboard/proto/rating';
import {
  RegistrarClient,
  RegistrarService,
  WatchEvent_Type,
  type Binding,
  type WatchEvent,
} from '@switchboard/proto/registrar';
import { DomainError, invalidArgument, notFound, unavailable } from '../errors';
import {
  grpcClient,
  grpcService,
  serveGrpc,
  type AsyncServiceImplementation,
  type GrpcClientOptions,
  type GrpcServer,
} from '.';

/** A pino logger writing JSON lines into an array. */
function captureLogger() {
  const lines: Record<string, unknown>[] = [];
  const dest = new Writable({
    write(chunk, _enc, cb) {
      lines.push(JSON.parse(String(chunk)));
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, dest), lines };
}

const servers: GrpcServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.shutdown(100)));
});

type RatingImpl = AsyncServiceImplementation<typeof RatingService>;
const noBalance: RatingImpl['getBalance'] = () => {
  throw notFound('no such account');
};

async function rating(authorize: RatingImpl['authorize'], logger = captureLogger().logger) {
  const srv = await serveGrpc({
    host: '127.0.0.1',
    port: 0,
    logger,
    services: [grpcService(RatingService, { authorize, getBalance: noBalance })],
  });
  servers.push(srv);
  return srv;
}

const request: AuthorizeRequest = { account: 'sip:alice@example.com', callee: '4420794601', callId: 'c1' };
const allowed: AuthorizeResponse = {
  allowed: true,
  maxSeconds: 120,
  reason: AuthorizeResponse_Reason.REASON_OK,
  detail: '',
};

/** Records the pauses asked for, without pausing. */
function fakeSleep() {
  const pauses: number[] = [];
  return { pauses, sleep: async (ms: number) => void pauses.push(ms) };
}

for (const inProcess of [false, true])
  describe(`serveGrpc + grpcClient (${inProcess ? 'a server of the same process, called directly' : 'over HTTP/2'})`, () => {
    const connect = (port: number, opts: GrpcClientOptions = {}) =>
      grpcClient(RatingClient, `127.0.0.1:${port}`, { ...opts, inProcess });

    test('an async handler answers a promisified call; the port is the bound one', async () => {
      const seen: AuthorizeRequest[] = [];
      const srv = await rating(async (req) => {
        seen.push(req);
        return allowed;
      });
      assert.ok(srv.port > 0);
      const client = connect(srv.port);
      try {
        assert.deepEqual(await client.authorize(request), allowed);
        assert.deepEqual(seen, [request]);
      } finally {
        client.close();
      }
    });

    test(`the channel ${inProcess ? 'stays idle (no HTTP/2 connection)' : 'connects'}; a server elsewhere is called over the network`, async () => {
      const srv = await rating(async () => allowed);
      const client = connect(srv.port);
      try {
        await client.authorize(request);
        const state = client.raw.getChannel().getConnectivityState(false);
        assert.equal(state, inProcess ? connectivityState.IDLE : connectivityState.READY);
      } finally {
        client.close();
      }
      // same port, another address: not this process's server, so the network (nothing there)
      const elsewhere = grpcClient(RatingClient, `127.0.0.2:${srv.port}`, { deadlineMs: 300, retries: 0 });
      try {
        await assert.rejects(elsewhere.authorize(request), { kind: 'unavailable' });
      } finally {
        elsewhere.close();
      }
    });

    test('a method the server does not have (an older version of it): unimplemented, without retry', async () => {
      const srv = await serveGrpc({
        host: '127.0.0.1',
        port: 0,
        logger: captureLogger().logger,
        // as a server built before GetBalance existed
        services: [grpcService(RatingService, { authorize: async () => allowed } as unknown as RatingImpl)],
      });
      servers.push(srv);
      const { pauses, sleep } = fakeSleep();
      const client = connect(srv.port, { sleep });
      try {
        await assert.rejects(client.getBalance({ account: 'sip:alice@example.com' }), {
          kind: 'unimplemented',
        });
        assert.deepEqual(pauses, []);
      } finally {
        client.close();
      }
    });

    test('a synchronous handler and an absent proto3 optional field', async () => {
      const srv = await rating(() => ({ ...allowed, maxSeconds: undefined }));
      const client = connect(srv.port);
      try {
        const res = await client.authorize(request);
        assert.equal(res.maxSeconds, undefined);
        assert.equal(res.allowed, true);
      } finally {
        client.close();
      }
    });

    test('DomainError -> gRPC status (field in x-field) -> the same DomainError, without retry', async () => {
      let calls = 0;
      const srv = await rating(async () => {
        calls++;
        throw invalidArgument('callee', 'callee must be E.164 digits, got "0800 ABC"');
      });
      const { pauses, sleep } = fakeSleep();
      const client = connect(srv.port, { retries: 3, sleep });
      try {
        await assert.rejects(client.authorize(request), (e: unknown) => {
          assert.ok(e instanceof DomainError);
          assert.equal(e.kind, 'invalid_argument');
          assert.equal(e.field, 'callee');
          assert.equal(e.message, 'callee must be E.164 digits, got "0800 ABC"');
          assert.equal((e.cause as ServiceError).code, status.INVALID_ARGUMENT);
          return true;
        });
        assert.equal(calls, 1);
        assert.deepEqual(pauses, []);
      } finally {
        client.close();
      }
    });

    test('the status code on the wire is the mapped one; no x-field without a field', async () => {
      const srv = await rating(() => {
        throw notFound('no such account');
      });
      const raw = new RatingClient(`127.0.0.1:${srv.port}`, credentials.createInsecure());
      try {
        const err = await new Promise<ServiceError>((resolve) =>
          raw.authorize(request, (e) => resolve(e as ServiceError)),
        );
        assert.equal(err.code, status.NOT_FOUND);
        assert.equal(err.details, 'no such account');
        assert.deepEqual(err.metadata.get('x-field'), []);
      } finally {
        raw.close();
      }
      const client = connect(srv.port);
      try {
        await assert.rejects(client.getBalance({ account: 'x' }), { kind: 'not_found', field: undefined });
      } finally {
        client.close();
      }
    });

    test('any other error is INTERNAL with a generic message, and logged with the method path', async () => {
      const { logger, lines } = captureLogger();
      const srv = await rating(async () => {
        throw new TypeError('cannot read properties of undefined (secret detail)');
      }, logger);
      const client = connect(srv.port);
      try {
        await assert.rejects(client.authorize(request), { kind: 'internal', message: 'internal error' });
        const logged = lines.find((l) => l.path === '/switchboard.rating.v1.Rating/Authorize');
        assert.ok(logged, JSON.stringify(lines));
        assert.equal(logged.level, 50);
        assert.match(String((logged.err as { message: string }).message), /secret detail/);
      } finally {
        client.close();
      }
    });

    test('a handler slower than the deadline: deadline_exceeded, not retried', async () => {
      let calls = 0;
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      const srv = await rating(async () => {
        calls++;
        await released;
        return allowed;
      });
      const { pauses, sleep } = fakeSleep();
      const client = connect(srv.port, { deadlineMs: 50, retries: 3, sleep });
      try {
        await assert.rejects(client.authorize(request), { kind: 'deadline_exceeded' });
        assert.equal(calls, 1);
        assert.deepEqual(pauses, []);
      } finally {
        release();
        client.close();
      }
    });

    test('UNAVAILABLE twice, then an answer: retried with exponential backoff', async () => {
      let calls = 0;
      const srv = await rating(async () => {
        if (++calls <= 2) throw unavailable('warming up');
        return allowed;
      });
      const { pauses, sleep } = fakeSleep();
      const client = connect(srv.port, { retries: 3, backoffMs: 10, sleep });
      try {
        assert.deepEqual(await client.authorize(request), allowed);
        assert.equal(calls, 3);
        assert.deepEqual(pauses, [10, 20]);
      } finally {
        client.close();
      }
    });

    test('UNAVAILABLE on every attempt: bounded attempts, then unavailable', async () => {
      let calls = 0;
      const srv = await rating(async () => {
        calls++;
        throw unavailable('overloaded');
      });
      const { pauses, sleep } = fakeSleep();
      const client = connect(srv.port, {
        retries: 3,
        backoffMs: 100,
        maxBackoffMs: 250,
        sleep,
      });
      try {
        await assert.rejects(client.authorize(request), { kind: 'unavailable', message: 'overloaded' });
        assert.equal(calls, 4);
        assert.deepEqual(pauses, [100, 200, 250]);
      } finally {
        client.close();
      }
    });

    test('nothing listening at first: the retry reaches the server started meanwhile', async () => {
      // Learn a free port, then leave it unbound for the first attempt.
      const probe = await rating(async () => allowed);
      const port = probe.port;
      await probe.shutdown(100);
      let started: GrpcServer | undefined;
      let calls = 0;
      const client = connect(port, {
        retries: 8,
        backoffMs: 20,
        maxBackoffMs: 200,
        sleep: async (ms) => {
          if (!started) {
            started = await serveGrpc({
              host: '127.0.0.1',
              port,
              logger: captureLogger().logger,
              services: [
                grpcService(RatingService, {
                  authorize: async () => {
                    calls++;
                    return allowed;
                  },
                  getBalance: noBalance,
                }),
              ],
            });
            servers.push(started);
          }
          await new Promise((r) => setTimeout(r, ms));
        },
      });
      try {
        assert.deepEqual(await client.authorize(request), allowed);
        assert.ok(started, 'the first attempt should have failed with UNAVAILABLE');
        assert.equal(calls, 1);
      } finally {
        client.close();
      }
    });

    test('per-call metadata reaches the handler', async () => {
      let seen: unknown;
      const srv = await rating(async (_req, call) => {
        seen = call.metadata.get('x-request-id')[0];
        return allowed;
      });
      const client = connect(srv.port);
      try {
        const metadata = new Metadata();
        metadata.set('x-request-id', 'r-42');
        await client.authorize(request, { metadata });
        assert.equal(seen, 'r-42');
      } finally {
        client.close();
      }
    });
  });

describe('server streaming and shutdown (Registrar.Watch)', () => {
  const binding: Binding = {
    aor: 'sip:alice@example.com',
    contact: 'sip:alice@198.51.100.7:5060',
    expires: 1_800_000_000,
    q: 500,
    callId: 'reg-1',
    cseq: 7,
    path: ['<sip:edge1.example.com;lr>'],
    instanceId: '<urn:uuid:00000000-0000-1000-8000-000000000001>',
    regId: 1,
    received: { address: '198.51.100.7', port: 5060, transport: 'udp', flowId: '', localSocket: '' },
    userAgent: 'test',
    updatedAt: 1_700_000_000_123,
  };

  async function registrar(watch: AsyncServiceImplementation<typeof RegistrarService>['watch']) {
    const srv = await serveGrpc({
      host: '127.0.0.1',
      port: 0,
      logger: captureLogger().logger,
      services: [
        grpcService(RegistrarService, {
          register: async () => ({ bindings: [binding], minExpires: 0 }),
          registerBatch: async () => ({ results: [] }),
          lookup: async () => ({ bindings: [binding] }),
          listBindings: async () => ({ bindings: [], nextPageToken: '' }),
          unregister: async () => ({ removed: 0 }),
          watch,
        }),
      ],
    });
    servers.push(srv);
    return srv;
  }

  const collect = (client: RegistrarClient) =>
    new Promise<{ events: WatchEvent[]; error?: ServiceError }>((resolve) => {
      const events: WatchEvent[] = [];
      const stream = client.watch({ aor: '', snapshot: true });
      stream.on('data', (e: WatchEvent) => events.push(e));
      stream.on('error', (error: ServiceError) => resolve({ events, error }));
      stream.on('end', () => resolve({ events }));
    });

  test('the handler writes and ends the call; unary methods of the same service work', async () => {
    const srv = await registrar((call) => {
      call.write({ type: WatchEvent_Type.TYPE_UPSERT, binding });
      call.write({ type: WatchEvent_Type.TYPE_EXPIRED, binding });
      call.end();
    });
    const client = grpcClient(RegistrarClient, `127.0.0.1:${srv.port}`);
    try {
      const { events, error } = await collect(client.raw);
      assert.equal(error, undefined);
      assert.deepEqual(
        events.map((e) => e.type),
        [WatchEvent_Type.TYPE_UPSERT, WatchEvent_Type.TYPE_EXPIRED],
      );
      assert.deepEqual(events[0].binding, binding);
      assert.deepEqual((await client.lookup({ aor: binding.aor })).bindings, [binding]);
    } finally {
      client.close();
    }
  });

  test('a rejected stream handler ends the call with the mapped status and field', async () => {
    const srv = await registrar(async () => {
      throw invalidArgument('aor', 'not a SIP URI');
    });
    const client = grpcClient(RegistrarClient, `127.0.0.1:${srv.port}`);
    try {
      const { events, error } = await collect(client.raw);
      assert.deepEqual(events, []);
      assert.ok(error);
      assert.equal(error.code, status.INVALID_ARGUMENT);
      assert.equal(error.details, 'not a SIP URI');
      assert.deepEqual(error.metadata.get('x-field'), ['aor']);
    } finally {
      client.close();
    }
  });

  test('shutdown cancels a call still open after the grace period, and is idempotent', async () => {
    let opened!: () => void;
    const isOpen = new Promise<void>((r) => (opened = r));
    const srv = await registrar((call) => {
      call.write({ type: WatchEvent_Type.TYPE_UPSERT, binding });
      opened(); // and never end: a watcher waiting for changes
    });
    const client = grpcClient(RegistrarClient, `127.0.0.1:${srv.port}`);
    try {
      const result = collect(client.raw);
      await isOpen;
      await Promise.all([srv.shutdown(20), srv.shutdown(20)]);
      const { events, error } = await result;
      assert.equal(events.length, 1);
      assert.ok(error, 'the open stream should end with an error status');
      assert.notEqual(error.code, status.OK);
    } finally {
      client.close();
    }
  });

  test('shutdown with nothing in flight returns without waiting for the grace period', async () => {
    const srv = await registrar((call) => {
      call.end();
    });
    // A grace far beyond the test runner's timeout: only tryShutdown can resolve this.
    await srv.shutdown(10 * 60_000);
  });
});
