/**
 * Phone auto-provisioning: a device (vendor, model, MAC) assigned to a
 * subscriber fetches its configuration by MAC, in its vendor's own file name
 * and format, rendered from a template file an operator can edit. Fetches are
 * authenticated with the device's provisioning password (HTTP Basic, user =
 * MAC, or `?token=`); an unknown MAC is a 404, logged.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

export const VENDORS = ['yealink', 'polycom', 'grandstream', 'cisco-spa', 'linphone'] as const;
export type Vendor = (typeof VENDORS)[number];

export const CreateDevice = z.strictObject({
  vendor: z.enum(VENDORS),
  model: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/, 'letters, digits, space and . _ -'),
  /** Any common notation: 00:15:65:aa:bb:cc, 00-15-65-AA-BB-CC, 001565aabbcc. */
  mac: z
    .string()
    .transform((s) => s.toLowerCase().replace(/[:.-]/g, ''))
    .refine(
      (s) => /^[0-9a-f]{12}$/.test(s) && s !== '000000000000',
      'a MAC address such as 00:15:65:aa:bb:cc',
    ),
});

/** The file a phone asks for: which vendor's naming, and whose MAC (none for Polycom's master file). */
export function parseProvisioningFile(
  name: string,
): { vendors: Vendor[]; mac: string } | { master: true } | undefined {
  const n = name.toLowerCase();
  if (n === '000000000000.cfg') return { master: true };
  let m = /^([0-9a-f]{12})\.cfg$/.exec(n);
  if (m) return { vendors: ['yealink', 'polycom'], mac: m[1] };
  m = /^cfg([0-9a-f]{12})\.xml$/.exec(n);
  if (m) return { vendors: ['grandstream'], mac: m[1] };
  m = /^spa([0-9a-f]{12})\.xml$/.exec(n);
  if (m) return { vendors: ['cisco-spa'], mac: m[1] };
  m = /^linphone-([0-9a-f]{12})\.xml$/.exec(n);
  if (m) return { vendors: ['linphone'], mac: m[1] };
  return undefined;
}

/** The file name a device fetches. */
export function provisioningFile(vendor: Vendor, mac: string): string {
  switch (vendor) {
    case 'grandstream':
      return `cfg${mac}.xml`;
    case 'cisco-spa':
      return `spa${mac}.xml`;
    case 'linphone':
      return `linphone-${mac}.xml`;
    default:
      return `${mac}.cfg`;
  }
}

export const TEMPLATE_FILES: Record<Vendor | 'polycom-master', string> = {
  yealink: 'yealink.cfg',
  polycom: 'polycom.cfg',
  'polycom-master': 'polycom-master.cfg',
  grandstream: 'grandstream.xml',
  'cisco-spa': 'cisco-spa.xml',
  linphone: 'linphone.xml',
};

const XML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
};

/**
 * `{{name}}` replaced by its value; in an XML template (one starting with `<`) values are
 * escaped; in a key = value file a line break in a value is dropped. An unknown name is an error,
 * so a typo in an edited template shows at once.
 */
export function render(template: string, vars: Record<string, string>): string {
  const xml = template.trimStart().startsWith('<');
  return template.replace(/\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g, (_, name: string) => {
    if (!(name in vars)) throw new Error(`template names an unknown variable {{${name}}}`);
    const v = vars[name];
    return xml ? v.replace(/[&<>"']/g, (c) => XML_ESCAPES[c]) : v.replace(/[\r\n]/g, '');
  });
}

export async function loadTemplate(dir: string, vendor: Vendor | 'polycom-master'): Promise<string> {
  return readFile(join(dir, TEMPLATE_FILES[vendor]), 'utf8');
}

/** The user and password of an HTTP Basic Authorization header. */
export function basicAuth(header: string | undefined): { user: string; password: string } | undefined {
  const m = header && /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return undefined;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const i = text.indexOf(':');
  return i < 0 ? undefined : { user: text.slice(0, i), password: text.slice(i + 1) };
}
