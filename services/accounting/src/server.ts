/**
 * The RADIUS accounting listener (RFC 2866 over UDP): looks up the client by
 * source address, verifies the Request Authenticator with its secret, hands the
 * record to the writer and answers once it is durable. Unknown clients, wrong
 * authenticators, malformed packets and a full write queue are dropped without
 * an answer (RFC 2865 §3, RFC 2866 §4.1) and counted. Status-Server (RFC 5997)
 * is answered with an Accounting-Response.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Logger } from 'pino';
import { literalLookup } from '@switchboard/platform';
import {
  Dictionary,
  RadiusCode,
  RadiusDecodeError,
  encodeResponse,
  verifyAccountingRequest,
  verifyMessageAuthenticatedRequest,
} from '@switchboard/radius';
import type { ClientTable, NasClient } from './clients';
import { unmapIPv4 } from './clients';
import { buildRecord, recordId } from './record';
import { OverloadError, type Done, type NewRecord } from './writer';

export type DropReason =
  'unknown_client' | 'bad_authenticator' | 'malformed' | 'unsupported_code' | 'overload' | 'store_failed';

export const STATUS_TYPES = new Set([
  'Start',
  'Stop',
  'Interim-Update',
  'Accounting-On',
  'Accounting-Off',
  'Failed',
]);

export interface ServerHooks {
  request(type: string, client: string): void;
  dropped(reason: DropReason): void;
  duplicate(client: string): void;
}

export interface AccountingServerOptions {
  host: string;
  port: number;
  clients: () => ClientTable;
  store: { add(rec: NewRecord, done: Done): void };
  dictionary?: Dictionary;
  hooks: ServerHooks;
  logger?: Logger;
  now?: () => Date;
}

export interface AccountingServer {
  readonly port: number;
  readonly address: string;
  /** Ignore new requests from now on; replies to those being stored still go out. */
  stopAccepting(): void;
  close(): Promise<void>;
}

export async function startAccountingServer(o: AccountingServerOptions): Promise<AccountingServer> {
  const dict = o.dictionary ?? Dictionary.standard();
  const now = o.now ?? (() => new Date());
  const socket: Socket = createSocket({
    type: isIPv6(o.host) ? 'udp6' : 'udp4',
    recvBufferSize: 4 * 1024 * 1024,
    // replies go to the request's source, always a literal: no dns.lookup tick per reply
    lookup: literalLookup,
  });
  let closing = false;
  let accepting = true;

  // No callback (a failed reply was ignored before too; the client retransmits): dgram
  // then queues no completion tick per reply.
  const reply = (buf: Buffer, r: RemoteInfo) => {
    if (!closing) socket.send(buf, r.port, r.address);
  };

  function onAccounting(msg: Buffer, r: RemoteInfo, client: NasClient): void {
    if (!verifyAccountingRequest(msg, client.secret)) return o.hooks.dropped('bad_authenticator');
    let attrs;
    try {
      attrs = dict.decodePacketAttributes(msg);
    } catch (e) {
      if (e instanceof RadiusDecodeError) return o.hooks.dropped('malformed');
      throw e;
    }
    const status = attrs['Acct-Status-Type'];
    // RFC 2866 §5.1: Acct-Status-Type is required.
    if (status === undefined || Array.isArray(status) || Buffer.isBuffer(status))
      return o.hooks.dropped('malformed');
    const type = typeof status === 'string' && STATUS_TYPES.has(status) ? status : 'other';
    o.hooks.request(type, client.name);
    const identifier = msg[1];
    // The datagram's buffer is this request's own (dgram allocates one per message).
    const requestAuthenticator = msg.subarray(4, 20);
    const srcAddr = unmapIPv4(r.address);
    const authenticator = msg.toString('hex', 4, 20);
    const rid = attrs['Switchboard-Record-Id'];
    const id =
      typeof rid === 'string' && rid !== ''
        ? recordId({ client: client.name, senderRecordId: rid })
        : recordId({ srcAddr, srcPort: r.port, identifier, authenticatorHex: authenticator });
    const record = buildRecord({ id, receivedAt: now(), client: client.name }, attrs);
    o.store.add({ record, srcAddr, srcPort: r.port, identifier, authenticator }, (err, outcome) => {
      if (err) {
        if (err instanceof OverloadError) return o.hooks.dropped('overload');
        o.hooks.dropped('store_failed');
        return o.logger?.error(
          { err },
          'storing an accounting record failed; not answered (the client retransmits)',
        );
      }
      if (outcome === 'duplicate') o.hooks.duplicate(client.name);
      reply(
        encodeResponse({
          code: RadiusCode.AccountingResponse,
          identifier,
          requestAuthenticator,
          secret: client.secret,
        }),
        r,
      );
    });
  }

  function onStatusServer(msg: Buffer, r: RemoteInfo, client: NasClient): void {
    if (!verifyMessageAuthenticatedRequest(msg, client.secret)) return o.hooks.dropped('bad_authenticator');
    o.hooks.request('Status-Server', client.name);
    reply(
      encodeResponse({
        code: RadiusCode.AccountingResponse,
        identifier: msg[1],
        requestAuthenticator: Buffer.from(msg.subarray(4, 20)),
        secret: client.secret,
        messageAuthenticator: true,
      }),
      r,
    );
  }

  socket.on('message', (msg, r) => {
    if (!accepting) return;
    try {
      if (msg.length < 20 || msg.readUInt16BE(2) > msg.length || msg.readUInt16BE(2) < 20)
        return o.hooks.dropped('malformed');
      const client = o.clients().match(r.address);
      if (!client) return o.hooks.dropped('unknown_client');
      if (msg[0] === RadiusCode.AccountingRequest) return onAccounting(msg, r, client);
      if (msg[0] === RadiusCode.StatusServer) return onStatusServer(msg, r, client);
      o.hooks.dropped('unsupported_code');
    } catch (err) {
      o.hooks.dropped('malformed');
      o.logger?.warn({ err, from: r.address }, 'accounting request failed');
    }
  });

  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(o.port, o.host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  socket.on('error', (err) => o.logger?.error({ err }, 'accounting socket error'));
  const addr = socket.address();
  return {
    port: addr.port,
    address: addr.address,
    stopAccepting: () => void (accepting = false),
    close: () =>
      new Promise<void>((resolve) => {
        closing = true;
        accepting = false;
        socket.close(() => resolve());
      }),
  };
}
