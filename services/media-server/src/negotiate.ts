/**
 * SDP offer/answer (RFC 3264) for one audio stream: PCMU or PCMA, plus
 * telephone-event (RFC 4733) when offered. Other streams are rejected with
 * port 0; no acceptable codec is a 488.
 */
import { effectiveConnection, parse, type SessionDescription } from '@switchboard/sdp';
import { DomainError } from '@switchboard/platform';
import { PT_PCMA, PT_PCMU, type Law } from './g711';

export interface Negotiated {
  law: Law;
  payloadType: number;
  dtmfPayloadType?: number;
  remote: { address: string; port: number };
  /** a=rtcp (RFC 3605) when the offer names one; else RTP port + 1. */
  remoteRtcpPort?: number;
  /** Index of the accepted m= line in the offer. */
  index: number;
  /** The offer's media lines, to answer each (accepted one, or rejected with port 0). */
  offer: SessionDescription;
}

const LAW_BY_NAME: Record<string, Law> = { PCMU: 'pcmu', PCMA: 'pcma' };

/** Choose a codec from an offer: undefined when nothing fits (488); throws DomainError('invalid_argument') on bad SDP (400). */
export function negotiate(
  body: string,
  preferred: readonly Law[] = ['pcmu', 'pcma'],
): Negotiated | undefined {
  let sdp: SessionDescription;
  try {
    sdp = parse(body);
  } catch (e) {
    throw new DomainError('invalid_argument', `bad SDP: ${(e as Error).message}`);
  }
  for (let i = 0; i < sdp.media.length; i++) {
    const m = sdp.media[i];
    if (m.media !== 'audio' || m.port === 0 || !/^RTP\/AVP$/i.test(m.proto)) continue;
    const conn = effectiveConnection(sdp, m);
    if (!conn) continue;
    const maps = m.rtpmaps;
    const lawOf = (fmt: string): Law | undefined => {
      const pt = Number(fmt);
      const map = maps.get(pt);
      if (map) return map.clockRate === 8000 ? LAW_BY_NAME[map.encoding.toUpperCase()] : undefined;
      return pt === PT_PCMU ? 'pcmu' : pt === PT_PCMA ? 'pcma' : undefined;
    };
    // RFC 3264 §6.1: the answerer should use the offerer's order of preference, among the ones we take.
    const offered = m.formats
      .map((f) => ({ pt: Number(f), law: lawOf(f) }))
      .filter((x) => x.law && preferred.includes(x.law));
    if (offered.length === 0) continue;
    let dtmf: number | undefined;
    for (const [pt, map] of maps) {
      if (
        map.encoding.toLowerCase() === 'telephone-event' &&
        map.clockRate === 8000 &&
        m.formats.includes(String(pt))
      ) {
        dtmf = pt;
        break;
      }
    }
    return {
      law: offered[0].law!,
      payloadType: offered[0].pt,
      dtmfPayloadType: dtmf,
      remote: { address: conn.address, port: m.port },
      remoteRtcpPort: m.rtcp?.port,
      index: i,
      offer: sdp,
    };
  }
  return undefined;
}

const ENC: Record<Law, string> = { pcmu: 'PCMU', pcma: 'PCMA' };
const addrType = (a: string) => (a.includes(':') ? 'IP6' : 'IP4');

/** The answer to an offer: the chosen stream on our port, every other m= line rejected. */
export function answerSdp(n: Negotiated, address: string, port: number, sessionId: number): string {
  const lines = [
    'v=0',
    `o=switchboard ${sessionId} ${sessionId} IN ${addrType(address)} ${address}`,
    's=switchboard media server',
    `c=IN ${addrType(address)} ${address}`,
    't=0 0',
  ];
  n.offer.media.forEach((m, i) => {
    if (i !== n.index) {
      lines.push(`m=${m.media} 0 ${m.proto} ${m.formats[0] ?? '0'}`);
      return;
    }
    const fmts = [n.payloadType, ...(n.dtmfPayloadType !== undefined ? [n.dtmfPayloadType] : [])];
    lines.push(`m=audio ${port} RTP/AVP ${fmts.join(' ')}`);
    lines.push(`a=rtpmap:${n.payloadType} ${ENC[n.law]}/8000`);
    if (n.dtmfPayloadType !== undefined) {
      lines.push(`a=rtpmap:${n.dtmfPayloadType} telephone-event/8000`, `a=fmtp:${n.dtmfPayloadType} 0-15`);
    }
    lines.push('a=ptime:20', 'a=sendrecv');
  });
  return lines.join('\r\n') + '\r\n';
}

/** An offer of our own (INVITE without SDP: the offer goes in the 2xx, the answer comes in the ACK). */
export function offerSdp(address: string, port: number, sessionId: number): string {
  return (
    [
      'v=0',
      `o=switchboard ${sessionId} ${sessionId} IN ${addrType(address)} ${address}`,
      's=switchboard media server',
      `c=IN ${addrType(address)} ${address}`,
      't=0 0',
      `m=audio ${port} RTP/AVP 0 8 101`,
      'a=rtpmap:0 PCMU/8000',
      'a=rtpmap:8 PCMA/8000',
      'a=rtpmap:101 telephone-event/8000',
      'a=fmtp:101 0-15',
      'a=ptime:20',
      'a=sendrecv',
    ].join('\r\n') + '\r\n'
  );
}
