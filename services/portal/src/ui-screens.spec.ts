/**
 * The web UI's screens beyond sign-up and credit, in headless Chromium
 * (playwright-core, Debian's /usr/bin/chromium): each creates, changes and
 * removes things through the page, checks them through the API (the only
 * source of truth), and shows the API's 4xx message naming the field.
 * Administrators: a subscriber's aliases/DIDs, call features, privileges, rate
 * plan and devices; gateways and routes; rate plans (CSV upload). Subscribers:
 * their forwarding, block list, speed dials, call history and balance.
 * Screenshots go to services/portal/test-results/.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { TOPICS } from '@switchboard/contracts';
import type { ServiceModule } from '@switchboard/platform';
import { ratingService } from '../../rating/src/main';
import { SAMPLE_RATES, startRecord, stopRecord } from '../../rating/src/testing';
import { startTestPortal, until, type TestPortal } from './test-support';

const SHOTS = join(import.meta.dirname, '..', 'test-results');
const PHONE = { width: 390, height: 844 };
let p: TestPortal;
let browser: Browser;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  p = await startTestPortal(
    {
      SWITCHBOARD_RATING_GRPC_PORT: '0',
      SWITCHBOARD_RATING_GRPC_HOST: '127.0.0.1',
      SWITCHBOARD_PORTAL_SECRET_KEY: 'cd'.repeat(32),
    },
    [ratingService as ServiceModule],
  );
  assert.equal(
    (await p.api('POST', '/api/v1/users', { username: 'admin', password: 'admin-password' })).status,
    201,
  );
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
});
after(async () => {
  await browser?.close();
  await p?.stop();
});

async function signIn(page: Page, login: string, password: string, heading: string) {
  await page.goto(p.url);
  await page.getByLabel('Login').fill(login);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: heading }).waitFor();
}

const flash = (page: Page, text: string | RegExp) =>
  page.locator('#flash').filter({ hasText: text }).waitFor();
/** A list screen (crud.js) by its title. */
const list = (page: Page, title: string) => page.getByRole('region', { name: title, exact: true });
const row = (l: Locator, key: string) => l.locator(`tr[data-key="${key}"]`);

async function newSubscriber(username: string, extra: Record<string, unknown> = {}) {
  const r = await p.api('POST', '/api/v1/subscribers', { username, password: 'secret-pw', ...extra });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body as { id: string; aor: string };
}

test("an administrator manages a subscriber's aliases, call features, privileges, rate plan and devices", async () => {
  const s = await newSubscriber('dave', { displayName: 'Dave' });
  const ctx = await browser.newContext({ viewport: PHONE });
  const page = await ctx.newPage();
  try {
    await signIn(page, 'admin', 'admin-password', 'Subscribers');
    await page.getByPlaceholder('Find by name, AoR, e-mail').fill('dave');
    await page.getByRole('button', { name: 'Find' }).click();
    await page.getByRole('cell', { name: 'sip:dave@example.com' }).click();
    await page.locator('#detail-aor').filter({ hasText: 'sip:dave@example.com' }).waitFor();

    // Aliases and DIDs: a bad number is refused naming the field; a DID is added, then removed.
    const aliases = list(page, 'Aliases and DIDs');
    await aliases.getByLabel('User or number').fill('-bad');
    await aliases.getByLabel('Kind').selectOption('did');
    await aliases.getByRole('button', { name: 'Add alias' }).click();
    await flash(page, /^username: /);
    assert.equal(await aliases.getByLabel('User or number').getAttribute('aria-invalid'), 'true');
    await aliases.locator('.field-error').filter({ hasText: 'username:' }).waitFor();
    await aliases.getByLabel('User or number').fill('+4930123456');
    await aliases.getByRole('button', { name: 'Add alias' }).click();
    await row(aliases, 'sip:+4930123456@example.com').waitFor();
    const a = await p.api('GET', `/api/v1/aliases?subscriberId=${s.id}`);
    assert.deepEqual(
      a.body.items.map((x: { aor: string; kind: string }) => [x.aor, x.kind]),
      [['sip:+4930123456@example.com', 'did']],
    );

    // Forwarding: added, a bad target refused naming `target`, changed, then removed.
    const fwd = list(page, 'Call forwarding');
    await fwd.getByLabel('When').selectOption('no-answer');
    await fwd.getByLabel('Target').fill('not a target');
    await fwd.getByRole('button', { name: 'Add forwarding rule' }).click();
    await flash(page, 'target: a SIP URI (sip:user@host) or a number');
    await fwd.getByLabel('Target').fill('sip:voicemail@example.com');
    await fwd.getByLabel('Ring for (seconds, no-answer)').fill('15');
    await fwd.getByRole('button', { name: 'Add forwarding rule' }).click();
    await row(fwd, 'no-answer').waitFor();
    await fwd.getByRole('button', { name: 'Edit no-answer' }).click();
    await fwd.getByLabel('Ring for (seconds, no-answer)').fill('30');
    await fwd.getByLabel('Enabled').uncheck();
    await fwd.getByRole('button', { name: 'Save forwarding rule' }).click();
    await flash(page, 'Saved forwarding rule no-answer');
    let f = await p.api('GET', `/api/v1/subscribers/${s.id}/forwarding`);
    assert.equal(f.body.items.length, 1);
    assert.equal(f.body.items[0].target, 'sip:voicemail@example.com');
    assert.equal(f.body.items[0].timeout, 30);
    assert.equal(f.body.items[0].enabled, false);

    // Block list and speed dials.
    const block = list(page, 'Block and allow list');
    await block.getByLabel('Direction').selectOption('incoming');
    await block.getByLabel('Number, prefix* or SIP address').fill('+4990*');
    await block.getByRole('button', { name: 'Add block list entry' }).click();
    await row(block, 'incoming +4990*').waitFor();
    const dials = list(page, 'Speed dials');
    await dials.getByLabel('Code (1-3 digits)').fill('12');
    await dials.getByLabel('Target').fill('+4930999');
    await dials.getByRole('button', { name: 'Add speed dial' }).click();
    await row(dials, '12').waitFor();
    assert.equal(
      (await p.api('GET', `/api/v1/subscribers/${s.id}/blocklist`)).body.items[0].pattern,
      '+4990*',
    );
    assert.equal(
      (await p.api('GET', `/api/v1/subscribers/${s.id}/speed-dials`)).body.items[0].target,
      '+4930999',
    );

    // Privileges: a known one by its checkbox, another by name; a bad name is refused naming it.
    await page.getByRole('checkbox', { name: 'national', exact: true }).check();
    await flash(page, 'Granted national for sip:dave@example.com');
    await page.getByLabel('Other privilege').fill('Night Calls');
    await page.getByRole('button', { name: 'Grant privilege' }).click();
    await flash(page, /^privilege: lower-case letters/);
    await page.getByLabel('Other privilege').fill('night-calls');
    await page.getByRole('button', { name: 'Grant privilege' }).click();
    // The grant's flash comes after its reloads: wait for it, or it can replace the next one's.
    await flash(page, 'Granted night-calls for sip:dave@example.com');
    await page.getByRole('checkbox', { name: 'night-calls' }).waitFor();
    assert.equal(await page.getByRole('checkbox', { name: 'night-calls' }).isChecked(), true);
    await page.getByRole('checkbox', { name: 'national', exact: true }).uncheck();
    await flash(page, 'Removed national for sip:dave@example.com');
    assert.deepEqual((await p.api('GET', `/api/v1/subscribers/${s.id}/privileges`)).body.privileges, [
      'night-calls',
    ]);

    // Rate plan of the subscriber.
    await page.getByLabel('Rate plan', { exact: true }).fill('gold');
    await page.getByRole('button', { name: 'Set rate plan' }).click();
    await flash(page, 'Rate plan of sip:dave@example.com: gold');
    assert.equal((await p.api('GET', `/api/v1/subscribers/${s.id}`)).body.ratePlan, 'gold');

    // Devices: a bad MAC refused naming `mac`; a Yealink added, its URL shown and served; removed.
    const devices = list(page, 'Devices (auto-provisioning)');
    await devices.getByLabel('Vendor').selectOption('yealink');
    await devices.getByLabel('Model').fill('T46U');
    await devices.getByLabel('MAC address').fill('00:15:65:zz:bb:cc');
    await devices.getByRole('button', { name: 'Add device' }).click();
    await flash(page, /^mac: a MAC address/);
    await devices.getByLabel('MAC address').fill('00:15:65:AA:BB:CC');
    await devices.getByRole('button', { name: 'Add device' }).click();
    await row(devices, '001565aabbcc').waitFor();
    const url = await page.locator('#device-new .prov-url').textContent();
    const pw = await page.locator('#device-new .prov-password').textContent();
    assert.equal(url, `${p.url}/provisioning/001565aabbcc.cfg`);
    const cfg = await fetch(url!, {
      headers: { authorization: `Basic ${Buffer.from(`001565aabbcc:${pw}`).toString('base64')}` },
    });
    assert.equal(cfg.status, 200);
    assert.match(await cfg.text(), /dave/);
    await page.screenshot({ path: join(SHOTS, 'admin-subscriber-detail.png'), fullPage: true });

    // Removals through the page reach the API.
    await aliases.getByRole('button', { name: 'Delete sip:+4930123456@example.com' }).click();
    await fwd.getByRole('button', { name: 'Delete no-answer' }).click();
    await devices.getByRole('button', { name: 'Delete 001565aabbcc' }).click();
    await flash(page, 'Deleted device 001565aabbcc');
    await until(
      async () => (await p.api('GET', `/api/v1/aliases?subscriberId=${s.id}`)).body.total === 0,
      'alias gone',
    );
    f = await p.api('GET', `/api/v1/subscribers/${s.id}/forwarding`);
    assert.equal(f.body.items.length, 0);
    assert.equal((await p.api('GET', `/api/v1/subscribers/${s.id}/devices`)).body.items.length, 0);
    assert.equal(await row(fwd, 'no-answer').count(), 0);
  } finally {
    await ctx.close();
  }
});

test('an administrator manages gateways and routes and uploads a rate plan', async () => {
  const s = await newSubscriber('erin');
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await ctx.newPage();
  // The privileges answer late: a tab chosen as soon as the screen shows must stay chosen.
  await page.route('**/api/v1/privileges', async (route) => {
    await new Promise((r) => setTimeout(r, 500));
    await route.continue();
  });
  try {
    await signIn(page, 'admin', 'admin-password', 'Subscribers');
    await page.getByRole('button', { name: 'Gateways & routes' }).click();
    await page.getByRole('heading', { name: 'Gateways and routes' }).waitFor();

    const gws = list(page, 'Gateways');
    await gws.getByLabel('Name').fill('carrier-a');
    await gws.getByLabel('Address (host:port)').fill('bad host!');
    await gws.getByRole('button', { name: 'Add gateway' }).click();
    await flash(page, /^address: host or host:port/);
    await gws.getByLabel('Address (host:port)').fill('gw-a.example.net:5060');
    await gws.getByRole('button', { name: 'Add gateway' }).click();
    await row(gws, 'carrier-a').waitFor();
    await gws.getByLabel('Name').fill('carrier-b');
    await gws.getByLabel('Address (host:port)').fill('gw-b.example.net');
    await gws.getByLabel('Transport').selectOption('tcp');
    await gws.getByRole('button', { name: 'Add gateway' }).click();
    await row(gws, 'carrier-b').waitFor();
    // Changed: carrier-a strips one digit and adds 00.
    await gws.getByRole('button', { name: 'Edit carrier-a' }).click();
    await gws.getByLabel('Digits put before the number').fill('00');
    await gws.getByLabel('Leading digits removed').fill('1');
    await gws.getByRole('button', { name: 'Save gateway' }).click();
    await flash(page, 'Saved gateway carrier-a');

    const gwList = (await p.api('GET', '/api/v1/gateways')).body.items as {
      id: string;
      name: string;
      prefix?: string;
      strip?: number;
      transport?: string;
    }[];
    const ga = gwList.find((g) => g.name === 'carrier-a')!;
    const gb = gwList.find((g) => g.name === 'carrier-b')!;
    assert.equal(ga.prefix, '00');
    assert.equal(ga.strip, 1);
    assert.equal(gb.transport, 'tcp');

    const routes = list(page, 'Routes');
    await routes.getByLabel('Name', { exact: true }).fill('germany');
    await routes.getByLabel('Number prefix (empty: every number)').fill('+49');
    await routes.getByLabel('Gateways').selectOption([ga.id, gb.id]);
    await routes.getByRole('button', { name: 'Add route' }).click();
    await row(routes, 'germany').waitFor();
    assert.equal(await row(routes, 'germany').locator('td').nth(2).textContent(), 'carrier-a, carrier-b');
    await routes.getByLabel('Name', { exact: true }).fill('everything');
    await routes.getByLabel('Gateways').selectOption([gb.id]);
    await routes.getByRole('button', { name: 'Add route' }).click();
    await row(routes, 'everything').waitFor();
    let rl = (await p.api('GET', '/api/v1/routes')).body.items as {
      name: string;
      prefix: string;
      gatewayIds: string[];
    }[];
    assert.deepEqual(rl.find((r) => r.name === 'germany')?.gatewayIds, [ga.id, gb.id]);
    assert.equal(rl.find((r) => r.name === 'everything')?.prefix, '');
    // A gateway a route uses cannot go: the API's 412 is shown.
    await gws.getByRole('button', { name: 'Delete carrier-b' }).click();
    await page.locator('#flash.error').waitFor();
    await routes.getByRole('button', { name: 'Delete everything' }).click();
    await flash(page, 'Deleted route everything');
    rl = (await p.api('GET', '/api/v1/routes')).body.items;
    assert.deepEqual(
      rl.map((r) => r.name),
      ['germany'],
    );
    await page.screenshot({ path: join(SHOTS, 'admin-routing.png'), fullPage: true });

    // Rate plans: a bad CSV refused naming ratesCsv; a file uploaded; the plan assigned and used.
    await page.getByRole('button', { name: 'Rate plans' }).click();
    const form = page.locator('#rate-plan-form');
    await form.getByLabel('Plan id').fill('basic');
    await form.getByLabel('Rates CSV', { exact: true }).fill('prefix,name\nnot,a,plan\n');
    await form.getByRole('button', { name: 'Upload rate plan' }).click();
    await flash(page, /^ratesCsv: /);
    assert.equal(await form.getByLabel('Rates CSV', { exact: true }).getAttribute('aria-invalid'), 'true');
    await form
      .getByLabel('Rates CSV file')
      .setInputFiles({ name: 'basic.csv', mimeType: 'text/csv', buffer: Buffer.from(SAMPLE_RATES) });
    await until(
      async () => (await form.getByLabel('Rates CSV', { exact: true }).inputValue()) === SAMPLE_RATES,
      'the file read into the form',
    );
    await form.getByRole('button', { name: 'Upload rate plan' }).click();
    await flash(page, 'Rate plan basic imported: 4 rates');
    const dp = page.locator('#domain-plan-form');
    await dp.getByLabel('Domain').selectOption({ label: 'example.com' });
    await dp.getByLabel('Plan id').fill('basic');
    await dp.getByRole('button', { name: 'Assign to domain' }).click();
    await flash(page, 'Rate plan of example.com: basic');
    await page.screenshot({ path: join(SHOTS, 'admin-rate-plans.png'), fullPage: true });
    let plan = await p.api('GET', '/api/v1/rate-plans/basic');
    assert.equal(plan.status, 200);
    assert.match(plan.body.ratesCsv, /^49,Germany,DE,/m);

    // Changed: the version in force loaded into the form, one price edited, uploaded as a new version.
    await form.getByLabel('Plan id').fill('basic');
    await form.getByRole('button', { name: 'Load plan' }).click();
    await flash(page, /^Loaded rate plan basic/);
    const loaded = await form.getByLabel('Rates CSV', { exact: true }).inputValue();
    assert.match(loaded, /^44,United Kingdom,GB,/m);
    await form
      .getByLabel('Rates CSV', { exact: true })
      .fill(loaded.replace(/^(44,United Kingdom,GB,[^,]*,[^,]*,)[^,]+,/m, '$10.09,'));
    await form.getByRole('button', { name: 'Upload rate plan' }).click();
    await flash(page, 'Rate plan basic imported: 4 rates');
    plan = await until(async () => {
      const r = await p.api('GET', '/api/v1/rate-plans/basic');
      return /^44,United Kingdom,GB,[^,]*,[^,]*,0\.09/m.test(r.body.ratesCsv) ? r : undefined;
    }, 'the new version in force');
    assert.equal(plan.body.currency, 'EUR');
    assert.equal((await p.api('GET', `/api/v1/subscribers/${s.id}`)).status, 200);
  } finally {
    await ctx.close();
  }
});

test('a subscriber manages its forwarding, block list and speed dials and sees its calls and balance', async () => {
  const s = await newSubscriber('fred', { webPassword: 'fred-web-pw' });
  const other = await newSubscriber('gina');
  assert.equal(
    (await p.api('POST', `/api/v1/subscribers/${s.id}/credit`, { amount: '3', reason: 'test' })).status,
    200,
  );
  // A rated call of fred's, as the accounting service would publish it.
  const answeredAt = Date.now() - 120_000;
  const call = { callId: 'ui-call-1@test', account: s.aor, callee: '4930111222', answeredAt, duration: 61 };
  await p.bus.publish(
    TOPICS.accounting,
    [startRecord(call), stopRecord(call)].map((r) => ({
      key: r.sessionId!,
      value: JSON.stringify(r),
      headers: { 'content-type': 'application/json' },
    })),
  );
  await until(
    async () => (await p.api('GET', `/api/v1/subscribers/${s.id}/cdrs`)).body?.items?.length === 1,
    'the CDR rated',
    15_000,
  );

  const ctx = await browser.newContext({ viewport: PHONE });
  const page = await ctx.newPage();
  try {
    await signIn(page, 'fred@example.com', 'fred-web-pw', 'My account');
    await page.locator('#me-balance').filter({ hasText: /EUR$/ }).waitFor();
    const balance = (await p.api('GET', `/api/v1/subscribers/${s.id}/balance`)).body;
    assert.equal(await page.locator('#me-balance').textContent(), `${balance.balance} ${balance.currency}`);

    const fwd = list(page, 'Call forwarding');
    await fwd.getByLabel('When').selectOption('busy');
    await fwd.getByLabel('Target').fill('sip:gina bad');
    await fwd.getByRole('button', { name: 'Add forwarding rule' }).click();
    await flash(page, /^target: /);
    await fwd.getByLabel('Target').fill('sip:gina@example.com');
    await fwd.getByRole('button', { name: 'Add forwarding rule' }).click();
    await row(fwd, 'busy').waitFor();
    await fwd.getByRole('button', { name: 'Edit busy' }).click();
    await fwd.getByLabel('Target').fill('+4930555');
    await fwd.getByRole('button', { name: 'Save forwarding rule' }).click();
    await flash(page, 'Saved forwarding rule busy');
    const f = (await p.api('GET', `/api/v1/subscribers/${s.id}/forwarding`)).body.items;
    assert.deepEqual(
      f.map((x: { condition: string; target: string }) => [x.condition, x.target]),
      [['busy', '+4930555']],
    );

    const block = list(page, 'Block and allow list');
    await block.getByLabel('Direction').selectOption('incoming');
    await block.getByLabel('Number, prefix* or SIP address').fill('anonymous');
    await block.getByRole('button', { name: 'Add block list entry' }).click();
    await row(block, 'incoming anonymous').waitFor();

    const dials = list(page, 'Speed dials');
    await dials.getByLabel('Code (1-3 digits)').fill('1234');
    await dials.getByLabel('Target').fill('+4930777');
    await dials.getByRole('button', { name: 'Add speed dial' }).click();
    await flash(page, 'code: 1 to 3 digits');
    await dials.getByLabel('Code (1-3 digits)').fill('7');
    await dials.getByRole('button', { name: 'Add speed dial' }).click();
    await row(dials, '7').waitFor();
    // A second rule with the same code is refused (409), shown.
    await dials.getByLabel('Code (1-3 digits)').fill('7');
    await dials.getByLabel('Target').fill('+4930888');
    await dials.getByRole('button', { name: 'Add speed dial' }).click();
    await page.locator('#flash.error').waitFor();
    assert.equal((await p.api('GET', `/api/v1/subscribers/${s.id}/speed-dials`)).body.items.length, 1);
    assert.equal(
      (await p.api('GET', `/api/v1/subscribers/${s.id}/blocklist`)).body.items[0].pattern,
      'anonymous',
    );

    // Call history: the rated call.
    const cdr = page.locator('#cdrs tr[data-call-id="ui-call-1@test"]');
    await cdr.waitFor();
    assert.match((await cdr.textContent())!, /4930111222/);
    const href = (await page.locator('#cdr-csv').getAttribute('href'))!;
    const csv = await page.evaluate(async (h) => (await fetch(h)).text(), href);
    assert.match(csv, /ui-call-1@test/);
    await page.screenshot({ path: join(SHOTS, 'subscriber-features.png'), fullPage: true });

    await block.getByRole('button', { name: 'Delete incoming anonymous' }).click();
    await flash(page, 'Deleted block list entry incoming anonymous');
    assert.equal((await p.api('GET', `/api/v1/subscribers/${s.id}/blocklist`)).body.items.length, 0);

    // Its session reaches no other subscriber's features.
    const status = await page.evaluate(
      async (id) => (await fetch(`/api/v1/subscribers/${id}/forwarding`)).status,
      other.id,
    );
    assert.equal(status, 403);
  } finally {
    await ctx.close();
  }
});

test("an administrator searches every account's calls and downloads them", async () => {
  // fred's rated call of the test before.
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await ctx.newPage();
  try {
    await signIn(page, 'admin', 'admin-password', 'Subscribers');
    await page.getByRole('button', { name: 'Calls' }).click();
    const form = page.getByRole('form', { name: 'Search calls' });
    await form.getByLabel('Number starts with').fill('49x');
    await form.getByRole('button', { name: 'Search calls' }).click();
    await flash(page, /^callee: /);
    await form.getByLabel('Number starts with').fill('+4930');
    await form.getByRole('button', { name: 'Search calls' }).click();
    await flash(page, '1 call found');
    const cdr = page.locator('#calls tr[data-call-id="ui-call-1@test"]');
    assert.match((await cdr.textContent())!, /sip:fred@example\.com.*4930111222.*61answered/);
    const href = (await page.locator('#calls-csv').getAttribute('href'))!;
    assert.match(href, /callee=%2B4930.*format=csv/);
    const csv = await page.evaluate(async (h) => (await fetch(h)).text(), href);
    assert.match(csv, /ui-call-1@test/);
    await page.screenshot({ path: join(SHOTS, 'admin-calls.png'), fullPage: true });

    await form.getByLabel('Result').selectOption('failed');
    await form.getByRole('button', { name: 'Search calls' }).click();
    await flash(page, '0 calls found');
    assert.ok(await page.locator('#calls-empty').isVisible());
    assert.equal(await page.locator('#calls tbody tr').count(), 0);
  } finally {
    await ctx.close();
  }
});
