/** Response shapes of the API, for the OpenAPI document (the handlers' types are in store.ts and api.ts). */
import { z } from 'zod';

const Subscriber = z.object({
  id: z.uuid(),
  aor: z.string(),
  username: z.string(),
  domain: z.string(),
  displayName: z.string().nullable(),
  email: z.string().nullable(),
  ratePlan: z.string().nullable(),
  callerId: z.string().nullable(),
  privileges: z.array(z.string()),
  enabled: z.boolean(),
  aliases: z.array(z.string()),
  hasWebPassword: z.boolean(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});
const Domain = z.object({
  id: z.uuid(),
  domain: z.string(),
  subscribers: z.int(),
  openSignup: z.boolean(),
  dialPlan: z
    .object({ countryCode: z.string(), nationalPrefix: z.string(), internationalPrefix: z.string() })
    .nullable(),
  createdAt: z.iso.datetime(),
});
const Alias = z.object({
  id: z.uuid(),
  subscriberId: z.uuid(),
  kind: z.enum(['alias', 'did']),
  username: z.string(),
  domain: z.string(),
  aor: z.string(),
  createdAt: z.iso.datetime(),
});
const Token = z.object({
  id: z.uuid(),
  name: z.string(),
  role: z.literal('admin'),
  createdBy: z.string(),
  createdAt: z.iso.datetime(),
});
const AuditEntry = z.object({
  seq: z.string(),
  at: z.iso.datetime(),
  actor: z.string(),
  action: z.string(),
  entity: z.string(),
  entityId: z.string().nullable(),
  detail: z.unknown(),
});
const Registration = z.object({
  aor: z.string(),
  contact: z.string(),
  expires: z.iso.datetime(),
  q: z.int().optional(),
  callId: z.string(),
  cseq: z.int(),
  path: z.array(z.string()),
  instanceId: z.string(),
  regId: z.int(),
  received: z.object({ address: z.string(), port: z.int(), transport: z.string() }).optional(),
  userAgent: z.string(),
  updatedAt: z.iso.datetime(),
});
const Voucher = z.object({
  id: z.uuid(),
  code: z.string(),
  batch: z.string(),
  amount: z.string(),
  currency: z.string(),
  createdAt: z.iso.datetime(),
  redeemedBy: z.string().nullable(),
  redeemedAt: z.iso.datetime().nullable(),
});
const page = <T extends z.ZodType>(item: T) =>
  z.object({ items: z.array(item), page: z.int(), pageSize: z.int(), total: z.int() });

export const ResponseSchemas = {
  Subscriber,
  SubscriberPage: page(Subscriber),
  Domain,
  DomainPage: page(Domain),
  Alias,
  AliasPage: page(Alias),
  NewToken: Token.extend({ token: z.string() }),
  TokenPage: page(Token),
  AuditPage: page(AuditEntry),
  Privileges: z.object({ privileges: z.array(z.string()) }),
  PrivilegeList: z.object({ items: z.array(z.object({ name: z.string(), description: z.string() })) }),
  RegistrationPage: z.object({ items: z.array(Registration), nextPageToken: z.string().nullable() }),
  Session: z.object({
    role: z.enum(['admin', 'subscriber']),
    name: z.string(),
    csrfToken: z.string().nullable(),
  }),
  WebUser: z.object({
    id: z.uuid(),
    username: z.string(),
    role: z.literal('admin'),
    createdAt: z.iso.datetime(),
  }),
  WebUserPage: page(
    z.object({ id: z.uuid(), username: z.string(), role: z.literal('admin'), createdAt: z.iso.datetime() }),
  ),
  Feature: z
    .object({
      id: z.uuid(),
      subscriberId: z.uuid(),
      createdAt: z.iso.datetime(),
      updatedAt: z.iso.datetime(),
    })
    .loose(),
  FeatureList: z.object({
    items: z.array(z.object({ id: z.uuid(), subscriberId: z.uuid() }).loose()),
  }),
  RoutingEntity: z.object({ id: z.uuid(), createdAt: z.iso.datetime(), updatedAt: z.iso.datetime() }).loose(),
  RoutingEntityPage: page(z.object({ id: z.uuid() }).loose()),
  Balance: z.object({
    account: z.string(),
    balance: z.string(),
    balanceMicros: z.int(),
    reserved: z.string(),
    currency: z.string(),
    prepaid: z.boolean(),
    blocked: z.boolean(),
    planId: z.string().nullable(),
    pending: z.boolean().optional(),
  }),
  VoucherBatch: z.object({ batch: z.string(), items: z.array(Voucher) }),
  VoucherPage: page(Voucher),
  CdrPage: z.object({
    items: z.array(z.object({ id: z.string() }).loose()),
    nextPageToken: z.string().nullable(),
  }),
  RatePlanImport: z.object({ planId: z.string(), rates: z.int() }),
  SignupDomains: z.object({ items: z.array(z.string()) }),
  NewDevice: z
    .object({ id: z.uuid(), mac: z.string(), provisioningUrl: z.string(), provisioningPassword: z.string() })
    .loose(),
  DeviceList: z.object({
    items: z.array(
      z.object({ id: z.uuid(), vendor: z.string(), model: z.string(), mac: z.string() }).loose(),
    ),
  }),
  RatePlan: z.object({
    planId: z.string(),
    effectiveFrom: z.iso.datetime(),
    currency: z.string(),
    timezone: z.string(),
    holidays: z.array(z.string()),
    ratesCsv: z.string(),
    periodsCsv: z.string(),
  }),
  SipTrace: z.object({
    messages: z.array(
      z.object({
        time: z.iso.datetime(),
        dir: z.enum(['in', 'out']),
        transport: z.string(),
        peer: z.string(),
        callId: z.string(),
        summary: z.string(),
        message: z.string(),
      }),
    ),
  }),
  Error: z.object({ error: z.string(), message: z.string(), field: z.string().optional() }),
  OpenApi: z.object({ openapi: z.string() }).loose(),
} as const;
