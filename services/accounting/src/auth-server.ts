/**
 * The optional RADIUS authentication listener (UDP 1812): SIP digest
 * authentication against Switchboard's subscribers (digest-auth.ts), for an
 * existing Kamailio or OpenSIPS during a migration. A Message-Authenticator is
 * required on every Access-Request (the BlastRADIUS mitigation; a client row may
 * waive it for an old client that cannot send one) and sent on every reply. Only digest: an Access-Request without one is rejected. Status-Server
 * (RFC 5997) is answered with an Access-Accept.
 */
import { createSocket, type RemoteInfo } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Logger } from 'pino';
import {
  Dictionary,
  RadiusCode,
  decodePacket,
  encodeResponse,
  hasMessageAuthenticator,
  verifyMessageAuthenticatedRequest,
  type RawAttribute,
} from '@switchboard/radius';
import type { ClientTable } from './clients';
import { checkDigest, digestParamsOf, type DigestSubscriber } from './digest-auth';
import type { ServerHooks } from './server';

export interface AuthServerOptions {
  host: string;
  port: number;
  clients: () => ClientTable;
  subscribers: { lookup(username: string, realm: string): DigestSubscriber | undefined };
  hooks: ServerHooks & { auth(result: 'accept' | 'reject', client: string): void };
  logger?: Logger;
}

export interface AuthServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startAuthServer(o: AuthServerOptions): Promise<AuthServer> {
  const dict = Dictionary.standard();
  const socket = createSocket({ type: isIPv6(o.host) ? 'udp6' : 'udp4' });
  let closed = false;

  const reply = (
    code: number,
    msg: Buffer,
    r: RemoteInfo,
    secret: string,
    attributes: RawAttribute[] = [],
  ) => {
    if (closed) return;
    const buf = encodeResponse({
      code,
      identifier: msg[1],
      requestAuthenticator: Buffer.from(msg.subarray(4, 20)),
      attributes,
      secret,
      messageAuthenticator: true,
    });
    socket.send(buf, r.port, r.address, () => undefined);
  };

  socket.on('message', (msg, r) => {
    try {
      if (msg.length < 20 || msg.readUInt16BE(2) > msg.length || msg.readUInt16BE(2) < 20)
        return o.hooks.dropped('malformed');
      const client = o.clients().match(r.address);
      if (!client) return o.hooks.dropped('unknown_client');
      if (msg[0] !== RadiusCode.AccessRequest && msg[0] !== RadiusCode.StatusServer)
        return o.hooks.dropped('unsupported_code');
      // No Message-Authenticator, or a wrong one: silently dropped (RFC 3579 §3.2, BlastRADIUS),
      // unless the client is marked as one that cannot send it (then a present one is still checked).
      const exempt =
        client.requireMessageAuthenticator === false &&
        msg[0] === RadiusCode.AccessRequest &&
        !hasMessageAuthenticator(msg);
      if (!exempt && !verifyMessageAuthenticatedRequest(msg, client.secret))
        return o.hooks.dropped('bad_authenticator');
      const packet = decodePacket(msg);
      if (msg[0] === RadiusCode.StatusServer) {
        o.hooks.request('Status-Server', client.name);
        return reply(RadiusCode.AccessAccept, msg, r, client.secret);
      }
      o.hooks.request('Access-Request', client.name);
      const p = digestParamsOf(packet.attributes);
      const ok = p !== undefined && checkDigest(p, o.subscribers.lookup(p.username, p.realm));
      o.hooks.auth(ok ? 'accept' : 'reject', client.name);
      if (ok) return reply(RadiusCode.AccessAccept, msg, r, client.secret);
      reply(RadiusCode.AccessReject, msg, r, client.secret, [
        dict.encode(
          'Reply-Message',
          p ? 'digest authentication failed' : 'only SIP digest authentication is offered',
        ),
      ]);
    } catch (err) {
      o.hooks.dropped('malformed');
      o.logger?.warn({ err, from: r.address }, 'access request failed');
    }
  });

  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(o.port, o.host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  socket.on('error', (err) => o.logger?.error({ err }, 'authentication socket error'));
  return {
    port: socket.address().port,
    close: () =>
      new Promise<void>((resolve) => {
        closed = true;
        socket.close(() => resolve());
      }),
  };
}
