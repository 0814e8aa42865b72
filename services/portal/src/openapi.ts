/** The OpenAPI 3.1 document of the API, generated from the route table and its zod schemas. */
import { z } from 'zod';
import type { RouteDef } from './api';
import { ResponseSchemas } from './responses';

type Json = Record<string, unknown>;

function jsonSchema(s: z.ZodType): Json {
  const out = z.toJSONSchema(s, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }) as Json;
  delete out.$schema;
  return out;
}

const ERROR_TEXT: Record<number, string> = {
  400: 'Invalid request: the body names the field',
  401: 'No or unknown Bearer token',
  403: 'Not allowed for this role',
  404: 'Not found',
  409: 'Exists already',
  412: 'Precondition failed',
  413: 'The body is larger than this route takes',
  503: 'A service it needs is unavailable',
};

/** Path and query parameters of a route, from its zod object schemas. */
function parameters(r: RouteDef): Json[] {
  const out: Json[] = [];
  const add = (schema: z.ZodType | undefined, where: 'path' | 'query') => {
    if (!schema) return;
    const js = jsonSchema(schema) as { properties?: Record<string, Json>; required?: string[] };
    for (const [name, prop] of Object.entries(js.properties ?? {})) {
      if (where === 'path' && !r.path.includes(`{${name}}`)) continue;
      out.push({
        name,
        in: where,
        required: where === 'path' || (js.required ?? []).includes(name),
        schema: prop,
      });
    }
  };
  add(r.params, 'path');
  add(r.query, 'query');
  return out;
}

export function openApiDocument(routes: readonly RouteDef[], version: string): Json {
  const paths: Record<string, Record<string, Json>> = {};
  for (const r of routes) {
    const responses: Record<string, Json> = {};
    responses[String(r.status)] = r.response
      ? {
          description: 'OK',
          content: { 'application/json': { schema: { $ref: `#/components/schemas/${r.response}` } } },
        }
      : { description: 'Done' };
    const errors = new Set([400, ...(r.auth === 'admin' ? [401, 403] : []), ...(r.errors ?? [])]);
    for (const code of [...errors].sort()) {
      responses[String(code)] = {
        description: ERROR_TEXT[code] ?? 'Error',
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
      };
    }
    const op: Json = {
      operationId: r.operationId,
      summary: r.summary,
      tags: [r.tag],
      responses,
    };
    const params = parameters(r);
    if (params.length) op.parameters = params;
    if (r.body)
      op.requestBody = { required: true, content: { 'application/json': { schema: jsonSchema(r.body) } } };
    if (r.auth === 'none') op.security = [];
    (paths[r.path] ??= {})[r.method] = op;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Switchboard provisioning API',
      version,
      description:
        'Subscribers, domains, aliases and DIDs, privileges, API tokens and live registrations. ' +
        'Authenticate with `Authorization: Bearer <token>`; errors answer `{"error", "message", "field"}`.',
    },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }],
    tags: [...new Set(routes.map((r) => r.tag))].map((name) => ({ name })),
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: Object.fromEntries(Object.entries(ResponseSchemas).map(([k, s]) => [k, jsonSchema(s)])),
    },
  };
}
