/**
 * Request bodies and queries of the API (zod): validated once at the edge; a
 * failure is a 400 naming the field. The same schemas give the OpenAPI document.
 */
import { z } from 'zod';
import { invalidArgument } from '@switchboard/platform';

/** RFC 3261 user part, kept to the characters phones and operators actually use. */
export const Username = z
  .string()
  .regex(
    /^[A-Za-z0-9+][A-Za-z0-9._+-]{0,63}$/,
    'letters, digits and . _ + - (at most 64), not starting with . _ or -',
  );
export const DomainName = z
  .string()
  .max(253)
  .regex(
    /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/,
    'a host name such as example.com',
  )
  .transform((s) => s.toLowerCase());
export const SipPassword = z.string().min(6, 'at least 6 characters').max(128, 'at most 128 characters');
export const WebPassword = z.string().min(8, 'at least 8 characters').max(256, 'at most 256 characters');
export const Privilege = z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'lower-case letters, digits and -');
const Email = z
  .string()
  .max(254)
  .regex(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, 'an e-mail address');
const DisplayName = z.string().min(1).max(128);
const RatePlan = z.string().min(1).max(64);
const Uuid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'an id');

const unique = (a: string[]) => new Set(a).size === a.length;

export const CreateSubscriber = z.strictObject({
  username: Username,
  password: SipPassword,
  domain: DomainName.optional(),
  displayName: DisplayName.optional(),
  email: Email.optional(),
  webPassword: WebPassword.optional(),
  ratePlan: RatePlan.optional(),
  privileges: z.array(Privilege).max(32).refine(unique, 'privileges repeat').optional(),
  enabled: z.boolean().optional(),
});
export type CreateSubscriber = z.infer<typeof CreateSubscriber>;

export const UpdateSubscriber = z.strictObject({
  password: SipPassword.optional(),
  /** Caller ID on PSTN calls: one of the subscriber's DIDs (null: its first DID). */
  callerId: z
    .string()
    .regex(/^\+[1-9][0-9]{6,14}$/, "an E.164 number such as +4930123456 (one of the subscriber's DIDs)")
    .nullable()
    .optional(),
  displayName: DisplayName.nullable().optional(),
  email: Email.nullable().optional(),
  webPassword: WebPassword.nullable().optional(),
  ratePlan: RatePlan.nullable().optional(),
  privileges: z.array(Privilege).max(32).refine(unique, 'privileges repeat').optional(),
  enabled: z.boolean().optional(),
});
export type UpdateSubscriber = z.infer<typeof UpdateSubscriber>;

export const CreateDomain = z.strictObject({ domain: DomainName });

export const CreateAlias = z.strictObject({
  subscriberId: Uuid,
  /** The user part of the alias: a name or a DID number. */
  username: Username,
  domain: DomainName.optional(),
  kind: z.enum(['alias', 'did']).optional(),
});
export type CreateAlias = z.infer<typeof CreateAlias>;
export const UpdateAlias = z.strictObject({ subscriberId: Uuid });

export const UpdateMe = z.strictObject({
  password: SipPassword.optional(),
  webPassword: WebPassword.optional(),
  /** Required with webPassword. */
  currentWebPassword: z.string().max(256).optional(),
  displayName: DisplayName.nullable().optional(),
  email: Email.nullable().optional(),
});
export const Login = z.strictObject({
  /** A web user's name, or a subscriber as user@domain (or a bare user of the default domain). */
  login: z.string().min(1).max(320),
  password: z.string().min(1).max(256),
});
export const CreateWebUser = z.strictObject({
  username: z
    .string()
    .regex(/^[a-z][a-z0-9._-]{0,31}$/, 'lower-case letters, digits and . _ - (at most 32), no @'),
  password: WebPassword,
});

export const CreateToken = z.strictObject({ name: z.string().min(1).max(64) });

export const PageQuery = z.object({
  page: z.coerce.number().int().min(1).max(1_000_000).optional(),
  pageSize: z.coerce.number().int().min(1).max(500).optional(),
});
export const SearchQuery = PageQuery.extend({ search: z.string().max(128).optional() });
export const AliasQuery = SearchQuery.extend({ subscriberId: Uuid.optional() });
export const RegistrationsQuery = z.object({
  domain: z.string().max(253).optional(),
  aor: z.string().max(512).optional(),
  pageSize: z.coerce.number().int().min(1).max(1000).optional(),
  pageToken: z.string().max(1024).optional(),
});
export const IdParam = z.object({ id: Uuid });
export const PrivilegeParam = z.object({ id: Uuid, privilege: Privilege });

/** Parse or throw a DomainError naming the first bad field (dotted path; `body` for the whole). */
export function parse<T extends z.ZodType>(schema: T, value: unknown, where = 'body'): z.output<T> {
  const r = schema.safeParse(value ?? (where === 'body' ? undefined : {}));
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  let path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0];
    path = path ? `${path}.${key}` : key;
    throw invalidArgument(path, `${path}: unknown field`);
  }
  const field = path || where;
  const missing = issue.code === 'invalid_type' && issue.message.includes('undefined');
  throw invalidArgument(field, `${field}: ${missing ? 'required' : issue.message}`);
}

const Amount = z.string().regex(/^-?\d{1,9}(\.\d{1,6})?$/, 'a decimal amount such as 10.00');
export const AddCredit = z.strictObject({
  amount: Amount,
  reason: z.string().min(1).max(256),
  kind: z.enum(['topup', 'adjustment', 'refund']).optional(),
});
export const CreateVouchers = z.strictObject({
  count: z.int().min(1).max(1000),
  amount: Amount.refine((a) => !a.startsWith('-') && Number(a) > 0, 'a positive amount'),
  batch: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits and . _ -')
    .optional(),
});
export const VoucherQuery = PageQuery.extend({
  batch: z.string().max(64).optional(),
  format: z.enum(['json', 'csv']).optional(),
});
export const RedeemVoucher = z.strictObject({ code: z.string().min(1).max(64) });
export const CdrQuery = z.object({
  from: z.iso.datetime({ offset: true }).optional(),
  to: z.iso.datetime({ offset: true }).optional(),
  pageSize: z.coerce.number().int().min(1).max(1000).optional(),
  pageToken: z.string().max(1024).optional(),
  format: z.enum(['json', 'csv']).optional(),
});
export const CdrSearchQuery = CdrQuery.extend({
  /** The billed account, as its AoR (sip:alice@example.com, or alice@example.com). */
  account: z.string().min(1).max(256).optional(),
  /** E.164 digits the callee's number starts with ('+' allowed). */
  callee: z
    .string()
    .regex(/^\+?\d{1,15}$/, 'E.164 digits the number starts with')
    .optional(),
  disposition: z.enum(['answered', 'failed']).optional(),
  /** The id of the gateway the call went through. */
  gateway: z.string().min(1).max(128).optional(),
});
export const ImportRatePlan = z.strictObject({
  currency: z.string().regex(/^[A-Z]{3}$/, 'an ISO 4217 code such as EUR'),
  effectiveFrom: z.iso.datetime({ offset: true }).optional(),
  timezone: z.string().max(64).optional(),
  holidays: z.array(z.iso.date()).max(366).optional(),
  ratesCsv: z.string().min(1).max(10_000_000),
  periodsCsv: z.string().max(1_000_000).optional(),
});
export const RatePlanParam = z.object({
  planId: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits and . _ -'),
});
export const AssignPlan = z.strictObject({ planId: RatePlanParam.shape.planId });

/** How the domain's phones dial numbers (the proxy normalises them to E.164 with it). */
export const DialPlan = z.strictObject({
  countryCode: z.string().regex(/^[1-9][0-9]{0,2}$/, 'a country code: 1 to 3 digits'),
  nationalPrefix: z
    .string()
    .regex(/^[0-9]{0,3}$/, 'up to 3 digits')
    .optional(),
  internationalPrefix: z
    .string()
    .regex(/^[0-9]{0,4}$/, 'up to 4 digits')
    .optional(),
});
export const UpdateDomain = z.strictObject({
  openSignup: z.boolean().optional(),
  /** null: the platform's dial plan (SWITCHBOARD_SIP_COUNTRY_CODE ...). */
  dialPlan: DialPlan.nullable().optional(),
});
export const Signup = z.strictObject({
  username: Username,
  password: SipPassword,
  webPassword: WebPassword,
  domain: DomainName.optional(),
  displayName: DisplayName.optional(),
  email: Email.optional(),
});

/** A search of the proxy's SIP trace (its ops port, GET /sip/trace). */
export const TraceQuery = z.object({
  callId: z.string().min(1).max(256).optional(),
  /** A user part or number in From, To or the Request-URI. */
  number: z.string().min(1).max(64).optional(),
  method: z
    .string()
    .regex(/^[A-Za-z]{1,16}$/, 'a SIP method such as INVITE')
    .optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
  limit: z.coerce.number().int().min(1).max(5000).optional(),
});
export type TraceQuery = z.output<typeof TraceQuery>;
