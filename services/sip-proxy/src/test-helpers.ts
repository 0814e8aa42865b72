// Shared by the proxy's unit tests: subscribers with real HA1s and REGISTERs from a phone.
import { ha1, parseMessage, type SipRequest } from '@switchboard/sip';
import type { SubscriberRecord } from '@switchboard/contracts';

export function subscriber(
  username: string,
  password: string,
  domain = 'example.com',
  privileges: string[] = [],
): SubscriberRecord {
  return {
    aor: `sip:${username}@${domain}`,
    username,
    domain,
    ha1: ha1(username, domain, password, 'MD5'),
    ha1Sha256: ha1(username, domain, password, 'SHA-256'),
    enabled: true,
    privileges,
  };
}

export function registerRequest(opts: {
  user: string;
  domain?: string;
  cseq?: number;
  contact?: string;
  expires?: number;
  authorization?: string;
  callId?: string;
}): SipRequest {
  const domain = opts.domain ?? 'example.com';
  const lines = [
    `REGISTER sip:${domain} SIP/2.0`,
    `Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK${Math.random().toString(36).slice(2)};rport`,
    'Max-Forwards: 70',
    `From: <sip:${opts.user}@${domain}>;tag=ft1`,
    `To: <sip:${opts.user}@${domain}>`,
    `Call-ID: ${opts.callId ?? 'reg-call-1'}`,
    `CSeq: ${opts.cseq ?? 1} REGISTER`,
    ...(opts.contact !== undefined ? [`Contact: ${opts.contact}`] : []),
    ...(opts.expires !== undefined ? [`Expires: ${opts.expires}`] : []),
    ...(opts.authorization ? [`Authorization: ${opts.authorization}`] : []),
    'User-Agent: TestPhone/1.0',
    'Content-Length: 0',
    '',
    '',
  ];
  return parseMessage(Buffer.from(lines.join('\r\n'))) as SipRequest;
}
