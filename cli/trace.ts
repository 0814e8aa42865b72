/**
 * `switchboard trace`: live SIP messages from a running proxy, like sngrep or
 * ngrep, read from its ops port (Server-Sent Events at /sip/trace/stream).
 */
import { parseArgs } from 'node:util';

interface Msg {
  time: string;
  dir: 'in' | 'out';
  transport: string;
  peer: string;
  callId: string;
  summary: string;
  message: string;
}

export function formatMessage(m: Msg, full: boolean): string {
  const arrow = m.dir === 'in' ? '<--' : '-->';
  const head = `${m.time.slice(11, 23)} ${arrow} ${m.transport.toUpperCase()} ${m.peer.padEnd(21)} ${m.summary}  [${m.callId}]`;
  return full ? `${head}\n${m.message.trimEnd()}\n` : head;
}

export async function trace(
  argv: string[],
  out: (line: string) => void = console.log,
  signal?: AbortSignal,
): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      url: { type: 'string', default: 'http://127.0.0.1:9464' },
      'call-id': { type: 'string' },
      number: { type: 'string' },
      method: { type: 'string' },
      full: { type: 'boolean', default: false },
    },
  });
  const q = new URLSearchParams();
  if (values['call-id']) q.set('callId', values['call-id']);
  if (values.number) q.set('number', values.number);
  if (values.method) q.set('method', values.method);
  const url = `${values.url!.replace(/\/$/, '')}/sip/trace/stream?${q}`;
  let res: Response;
  try {
    res = await fetch(url, { signal });
  } catch (e) {
    throw new Error(`cannot reach the proxy's ops port at ${values.url}: ${(e as Error).message}`);
  }
  if (!res.ok || !res.body) throw new Error(`${url} answered ${res.status}: is a sip-proxy running there?`);
  out(`following SIP messages at ${values.url} (Ctrl-C to stop)`);
  const decoder = new TextDecoder();
  let buf = '';
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const event = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = event
          .split('\n')
          .filter((l) => l.startsWith('data: '))
          .map((l) => l.slice(6))
          .join('\n');
        if (data) out(formatMessage(JSON.parse(data) as Msg, values.full!));
      }
    }
  } catch (e) {
    if ((e as Error).name !== 'AbortError') throw e;
  }
}
