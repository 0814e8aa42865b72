/**
 * The trace on the ops port: GET /sip/trace (search stored messages),
 * GET /sip/trace/stream (live, Server-Sent Events; what `switchboard trace`
 * reads), POST /sip/trace/config (switch tracing on or off, globally or per
 * subscriber, without a restart).
 */
import type { OpsHandler } from '@switchboard/platform';
import { entryJson, type TraceFilter, type Tracer } from './trace';

function filterOf(url: URL): TraceFilter {
  const q = url.searchParams;
  const num = (k: string) => (q.has(k) ? Date.parse(q.get(k)!) : undefined);
  return {
    callId: q.get('callId') ?? undefined,
    number: q.get('number') ?? undefined,
    method: q.get('method') ?? undefined,
    since: num('since'),
    until: num('until'),
  };
}

export function traceRoutes(tracer: Tracer): Record<string, OpsHandler> {
  const json = (res: Parameters<OpsHandler>[1], status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body) + '\n');
  };
  return {
    '/sip/trace': (_req, res, url) => {
      const limit = Math.min(Number(url.searchParams.get('limit') ?? 500) || 500, 5000);
      json(res, 200, { messages: tracer.search(filterOf(url), limit).map(entryJson) });
    },
    '/sip/trace/stream': (req, res, url) => {
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-store',
        connection: 'keep-alive',
      });
      res.write(': following SIP messages\n\n');
      const stop = tracer.follow(filterOf(url), (e) =>
        res.write(`data: ${JSON.stringify(entryJson(e))}\n\n`),
      );
      req.on('close', stop);
    },
    '/sip/trace/config': (req, res) => {
      if (req.method === 'GET') return json(res, 200, { global: tracer.global, users: [...tracer.users] });
      if (req.method !== 'POST') return json(res, 405, { error: 'use GET or POST' });
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        let cfg: { global?: unknown; add?: unknown; remove?: unknown };
        try {
          cfg = JSON.parse(body || '{}');
        } catch {
          return json(res, 400, { error: 'body is not JSON', field: 'body' });
        }
        if (cfg.global !== undefined && typeof cfg.global !== 'boolean')
          return json(res, 400, { error: 'global must be true or false', field: 'global' });
        for (const k of ['add', 'remove'] as const) {
          const v = cfg[k];
          if (v !== undefined && (!Array.isArray(v) || v.some((x) => typeof x !== 'string')))
            return json(res, 400, { error: `${k} must be a list of users`, field: k });
        }
        if (typeof cfg.global === 'boolean') tracer.global = cfg.global;
        for (const u of (cfg.add as string[] | undefined) ?? []) tracer.users.add(u);
        for (const u of (cfg.remove as string[] | undefined) ?? []) tracer.users.delete(u);
        json(res, 200, { global: tracer.global, users: [...tracer.users] });
      });
    },
  };
}
