/**
 * The accounting record on the main thread, alone: decode the bench's Accounting-Request
 * attributes (bench/radius/run.ts's set), build the record, write its JSON. CPU per
 * record of each step, several rounds.
 *
 *   npx tsx bench/radius/record.ts [--n=300000]
 */
import { Dictionary, encodePacket, RadiusCode } from '@switchboard/radius';
import { buildRecord } from '../../services/accounting/src/record';

const n = Number(/--n=(\d+)/.exec(process.argv.slice(2).join(' '))?.[1] ?? 300_000);
const dict = Dictionary.standard();
const packet = encodePacket({
  code: RadiusCode.AccountingRequest,
  identifier: 1,
  authenticator: Buffer.alloc(16),
  attributes: dict.encodeAll([
    ['Acct-Status-Type', 'Start'],
    ['Acct-Session-Id', 'bench-1-k3j4h5g6@192.0.2.1'],
    ['Sip-Method', 'INVITE'],
    ['Sip-Response-Code', 200],
    ['Sip-From-Tag', 'ft1'],
    ['Sip-To-Tag', 'tt1'],
    ['User-Name', 'user1@example.com'],
    ['Calling-Station-Id', 'sip:user1@example.com'],
    ['Called-Station-Id', 'sip:+15550000001@example.com'],
    ['Sip-Translated-Request-URI', 'sip:+15550000001@gw1.example.net'],
    ['Event-Timestamp', 1_700_000_000],
    ['NAS-IP-Address', '127.0.0.1'],
    ['Acct-Delay-Time', 0],
    ['Service-Type', 'Sip-Session'],
    ['Switchboard-Account', 'acct-1'],
    ['Switchboard-Gateway', 'gw1'],
    ['Switchboard-Source-Address', '192.0.2.10:5060'],
  ]),
});
const meta = { id: '0b9c8a1e-6d0c-8f5e-9a55-3f1f6c2e7a10', receivedAt: new Date(), client: '127.0.0.1/32' };
const attrs = dict.decodePacketAttributes(packet);
const rec = buildRecord(meta, attrs);
let sink = 0;
const time = (name: string, f: () => unknown) => {
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) sink += f() ? 1 : 0;
  const c = process.cpuUsage(t0);
  console.log(`${name.padEnd(36)} ${((c.user + c.system) / n).toFixed(2)} µs`);
};
for (let round = 0; round < 3; round++) {
  time('decode', () => dict.decodePacketAttributes(packet));
  time('buildRecord', () => buildRecord(meta, attrs));
  time('JSON.stringify(record)', () => JSON.stringify(rec));
  time('all three', () => JSON.stringify(buildRecord(meta, dict.decodePacketAttributes(packet))));
}
if (sink < 0) console.log(sink);
