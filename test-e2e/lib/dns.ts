/**
 * A tiny authoritative DNS server on loopback for tests: answers NAPTR queries
 * from a table (RFC 3403 RDATA), NXDOMAIN for anything else.
 */
import dgram from 'node:dgram';

export interface Naptr {
  order: number;
  preference: number;
  flags: string;
  service: string;
  regexp: string;
}

const charString = (s: string) => Buffer.concat([Buffer.from([Buffer.byteLength(s)]), Buffer.from(s)]);

export async function startNaptrServer(
  zone: Record<string, Naptr[]>,
): Promise<{ address: string; close(): Promise<void> }> {
  const sock = dgram.createSocket('udp4');
  sock.on('message', (q, rinfo) => {
    // The question: labels from offset 12, then type and class.
    let i = 12;
    const labels: string[] = [];
    while (i < q.length && q[i] !== 0) {
      labels.push(q.subarray(i + 1, i + 1 + q[i]).toString());
      i += q[i] + 1;
    }
    const qEnd = i + 5;
    const name = labels.join('.').toLowerCase();
    const type = q.readUInt16BE(i + 1);
    const records = type === 35 ? (zone[name] ?? []) : [];
    const answers = records.map((r) => {
      const rdata = Buffer.concat([
        Buffer.from([r.order >> 8, r.order & 255, r.preference >> 8, r.preference & 255]),
        charString(r.flags),
        charString(r.service),
        charString(r.regexp),
        Buffer.from([0]), // replacement: the root
      ]);
      const head = Buffer.alloc(12);
      head.writeUInt16BE(0xc00c, 0); // the question's name
      head.writeUInt16BE(35, 2);
      head.writeUInt16BE(1, 4);
      head.writeUInt32BE(60, 6);
      head.writeUInt16BE(rdata.length, 10);
      return Buffer.concat([head, rdata]);
    });
    const header = Buffer.alloc(12);
    q.copy(header, 0, 0, 2); // id
    header.writeUInt16BE(0x8400 | (zone[name] ? 0 : 3), 2); // response, authoritative, NOERROR or NXDOMAIN
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    sock.send(Buffer.concat([header, q.subarray(12, qEnd), ...answers]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  return {
    address: `127.0.0.1:${sock.address().port}`,
    close: () => new Promise<void>((r) => sock.close(() => r())),
  };
}
