/** Benchmark inputs: what a Yealink desk phone sends through an outbound proxy. */
const crlf = (lines: string[]) => lines.join('\r\n');

const sdp = crlf([
  'v=0',
  'o=- 20012 20012 IN IP4 192.168.1.23',
  's=SDP data',
  'c=IN IP4 192.168.1.23',
  't=0 0',
  'm=audio 11780 RTP/AVP 0 8 18 9 101',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:8 PCMA/8000',
  'a=rtpmap:18 G729/8000',
  'a=fmtp:18 annexb=no',
  'a=rtpmap:9 G722/8000',
  'a=fmtp:101 0-15',
  'a=rtpmap:101 telephone-event/8000',
  'a=ptime:20',
  'a=sendrecv',
  '',
]);

export const INVITE = Buffer.from(
  crlf([
    'INVITE sip:2002@sip.example.net:5060 SIP/2.0',
    'Via: SIP/2.0/UDP 192.168.1.23:5060;branch=z9hG4bK1718336295;rport',
    'Route: <sip:sbc.example.net;lr>',
    'From: "Alice 2001" <sip:2001@sip.example.net:5060>;tag=2867511469',
    'To: <sip:2002@sip.example.net:5060>',
    'Call-ID: 0_3403786540@192.168.1.23',
    'CSeq: 2 INVITE',
    'Contact: <sip:2001@192.168.1.23:5060>',
    'Content-Type: application/sdp',
    'Allow: INVITE, INFO, PRACK, ACK, BYE, CANCEL, OPTIONS, NOTIFY, REGISTER, SUBSCRIBE, REFER, PUBLISH, UPDATE, MESSAGE',
    'Max-Forwards: 70',
    'User-Agent: Yealink SIP-T46S 66.86.0.15',
    'Supported: replaces,timer',
    'Session-Expires: 1800',
    `Content-Length: ${Buffer.byteLength(sdp)}`,
    '',
    sdp,
  ]),
);

export const REGISTER = Buffer.from(
  crlf([
    'REGISTER sip:sip.example.net:5060 SIP/2.0',
    'Via: SIP/2.0/UDP 192.168.1.23:5060;branch=z9hG4bK3150911453;rport',
    'From: "Alice 2001" <sip:2001@sip.example.net:5060>;tag=1530231855',
    'To: "Alice 2001" <sip:2001@sip.example.net:5060>',
    'Call-ID: 1_1217592493@192.168.1.23',
    'CSeq: 2 REGISTER',
    'Contact: <sip:2001@192.168.1.23:5060>;+sip.instance="<urn:uuid:00000000-0000-1000-8000-805ec0a1b2c3>";reg-id=1',
    'Authorization: Digest username="2001", realm="sip.example.net", nonce="5f8d9c2a000000017b3c1e4e2f2d9b1f", uri="sip:sip.example.net:5060", response="9b1c6e2d3f4a5b6c7d8e9f0a1b2c3d4e", algorithm=MD5, cnonce="0a4f113b", qop=auth, nc=00000001',
    'X-Grandstream-PBX: true',
    'Max-Forwards: 70',
    'User-Agent: Yealink SIP-T46S 66.86.0.15',
    'Expires: 3600',
    'Allow: INVITE, INFO, PRACK, ACK, BYE, CANCEL, OPTIONS, NOTIFY, REGISTER, SUBSCRIBE, REFER, PUBLISH, UPDATE, MESSAGE',
    'Content-Length: 0',
    '',
    '',
  ]),
);
