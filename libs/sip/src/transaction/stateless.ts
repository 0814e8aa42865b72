/**
 * A stateless error response for bytes the parser rejected (RFC 3261 §8.2.2,
 * §21.4.1, RFC 4475 §3.1.2): scan the raw header section for the fields a
 * response copies (Via, From, To, Call-ID, CSeq) without parsing them, so even
 * a request with a broken start line or Content-Length can get its 400/505/513.
 * Responses, ACKs and requests missing one of those fields get nothing.
 */
import { REASON_PHRASES, parseVia } from '../message';
import { DEFAULT_PORTS, type SendTarget, type Source } from '../transport/types';
import { responseTarget } from '../transport/response-target';

const NAMES: Record<string, 'via' | 'from' | 'to' | 'call-id' | 'cseq'> = {
  via: 'via',
  v: 'via',
  from: 'from',
  f: 'from',
  to: 'to',
  t: 'to',
  'call-id': 'call-id',
  i: 'call-id',
  cseq: 'cseq',
};

const MAX_SCAN = 32768;

export interface StatelessError {
  wire: Buffer;
  target: SendTarget;
}

/** Build the error response and where to send it, or undefined when there is nothing to answer. */
export function errorResponseForRaw(
  raw: Buffer,
  status: number,
  src: Source,
  tag: string,
  reason = REASON_PHRASES[status] ?? 'Bad Request',
): StatelessError | undefined {
  let end = raw.indexOf('\r\n\r\n');
  if (end < 0) end = Math.min(raw.length, MAX_SCAN);
  const head = raw
    .toString('latin1', 0, Math.min(end, MAX_SCAN))
    .replace(/^(\r\n)+/, '')
    .replace(/\r\n[ \t]+/g, ' ');
  const lines = head.split('\r\n');
  const start = lines[0] ?? '';
  if (start.startsWith('SIP/') || !/^[!-~]+ /.test(start)) return undefined; // a response, or not SIP
  const vias: string[] = [];
  const one: Partial<Record<'from' | 'to' | 'call-id' | 'cseq', string>> = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = NAMES[line.slice(0, colon).trim().toLowerCase()];
    if (!name) continue;
    const value = line.slice(colon + 1).trim();
    if (/[\r\n\0]/.test(value)) return undefined;
    if (name === 'via') vias.push(value);
    else one[name] ??= value;
  }
  if (!vias.length || !one.from || !one.to || !one['call-id'] || !one.cseq) return undefined;
  if (/\bACK\s*$/i.test(one.cseq)) return undefined; // never answer an ACK
  const to = /;\s*tag\s*=/i.test(one.to) ? one.to : `${one.to};tag=${tag}`;
  const text =
    `SIP/2.0 ${status} ${reason.replace(/[\r\n]/g, ' ')}\r\n` +
    vias.map((v) => `Via: ${v}\r\n`).join('') +
    `From: ${one.from}\r\nTo: ${to}\r\nCall-ID: ${one['call-id']}\r\nCSeq: ${one.cseq}\r\nContent-Length: 0\r\n\r\n`;
  let target: SendTarget;
  try {
    const top = parseVia(vias[0].split(',')[0]);
    const host = top.host.startsWith('[') ? top.host.slice(1, -1) : top.host;
    target = responseTarget(
      {
        host,
        port: top.port ?? undefined,
        received: top.received,
        rport: top.rport !== undefined,
        maddr: top.maddr,
      },
      src,
    );
  } catch {
    // Unreadable Via: back to where the bytes came from.
    target =
      src.connId !== undefined
        ? { transport: src.transport, address: src.address, port: src.port, connId: src.connId }
        : { transport: src.transport, address: src.address, port: src.port || DEFAULT_PORTS.udp };
  }
  return { wire: Buffer.from(text, 'latin1'), target };
}
