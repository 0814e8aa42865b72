/**
 * The web UI in headless Chromium (playwright-core, Debian's /usr/bin/chromium),
 * on a phone-sized screen, with the rating service in the same process: a
 * visitor signs up, changes the SIP password, redeems a voucher and sees the
 * balance; an administrator signs in, finds the subscriber, grants the
 * international privilege and adds credit. Screenshots of the pages go to
 * services/portal/test-results/ for review.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { ServiceModule } from '@switchboard/platform';
import { TOPICS, type SubscriberRecord } from '@switchboard/contracts';
import { ha1 } from '@switchboard/sip';
import { ratingService } from '../../rating/src/main';
import { startTestPortal, until, type TestPortal } from './test-support';

const SHOTS = join(import.meta.dirname, '..', 'test-results');
const PHONE = { width: 390, height: 844 };
let p: TestPortal;
let browser: Browser;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  p = await startTestPortal(
    { SWITCHBOARD_RATING_GRPC_PORT: '0', SWITCHBOARD_RATING_GRPC_HOST: '127.0.0.1' },
    [ratingService as ServiceModule],
  );
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
});
after(async () => {
  await browser?.close();
  await p?.stop();
});

async function signIn(page: Page, login: string, password: string) {
  await page.goto(p.url);
  await page.getByLabel('Login').fill(login);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

const recordOf = async (aor: string) => (await p.topic<SubscriberRecord>(TOPICS.subscribers)).get(aor);

test('a visitor signs up, changes the SIP password, redeems a voucher and sees the balance', async () => {
  const domains = await p.api('GET', '/api/v1/domains');
  const def = domains.body.items.find((d: { domain: string }) => d.domain === 'example.com');
  assert.equal((await p.api('PATCH', `/api/v1/domains/${def.id}`, { openSignup: true })).status, 200);
  const vouchers = await p.api('POST', '/api/v1/vouchers', { count: 1, amount: '5' });
  const code = vouchers.body.items[0].code as string;

  const ctx = await browser.newContext({ viewport: PHONE });
  const page = await ctx.newPage();
  // The account answers late: the page must not show an account it has not named yet.
  await page.route('**/api/v1/me', async (route) => {
    await new Promise((r) => setTimeout(r, 500));
    await route.continue();
  });
  try {
    await page.goto(p.url);
    await page.getByRole('heading', { name: 'Create an account' }).waitFor();
    await page.screenshot({ path: join(SHOTS, 'signup.png'), fullPage: true });
    const form = page.locator('#signup-form');
    await form.getByLabel('User name').fill('alice');
    await form.getByLabel('SIP password (for your phone)').fill('secret');
    await form.getByLabel('Web password (for this site)').fill('alice-web-pw');
    await form.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('heading', { name: 'My account' }).waitFor();
    assert.equal(await page.locator('#me-aor').textContent(), 'sip:alice@example.com');
    await page.getByText('0.00 EUR').waitFor();

    // Signed out and in again with the new web password.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await signIn(page, 'alice@example.com', 'alice-web-pw');
    await page.getByRole('heading', { name: 'My account' }).waitFor();

    await page.getByLabel('New SIP password').fill('n3w-secret');
    await page.getByRole('button', { name: 'Change SIP password' }).click();
    await page.getByText('SIP password changed').waitFor();
    await until(
      async () =>
        (await recordOf('sip:alice@example.com'))?.ha1 === ha1('alice', 'example.com', 'n3w-secret', 'MD5'),
      'the new HA1 published',
    );

    await page.getByLabel('Voucher code').fill(code);
    await page.getByRole('button', { name: 'Redeem' }).click();
    await page.getByText('Voucher redeemed: balance 5.00 EUR').waitFor();
    assert.equal(await page.locator('#me-balance').textContent(), '5.00 EUR');
    await page.getByLabel('Voucher code').fill(code);
    await page.getByRole('button', { name: 'Redeem' }).click();
    await page.getByText('Unknown or already used voucher').waitFor();
    await page.screenshot({ path: join(SHOTS, 'subscriber-account.png'), fullPage: true });

    // The subscriber's session reaches no administrator route.
    assert.equal(await page.evaluate(async () => (await fetch('/api/v1/subscribers')).status), 403);
  } finally {
    await ctx.close();
  }
});

test('an administrator signs in, finds the subscriber, grants the international privilege and adds credit', async () => {
  assert.equal(
    (await p.api('POST', '/api/v1/users', { username: 'admin', password: 'admin-password' })).status,
    201,
  );
  await p.api('POST', '/api/v1/subscribers', {
    username: 'bob',
    password: 'b0b-secret',
    displayName: 'Bob Example',
  });
  const ctx = await browser.newContext({ viewport: PHONE });
  const page = await ctx.newPage();
  try {
    await page.goto(p.url);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.screenshot({ path: join(SHOTS, 'login.png'), fullPage: true });
    await signIn(page, 'admin', 'wrong-password');
    await page.getByText('Wrong login or password').waitFor();
    await signIn(page, 'admin', 'admin-password');
    await page.getByRole('heading', { name: 'Subscribers' }).waitFor();
    const cookie = (await ctx.cookies()).find((c) => c.name === 'sb_session');
    assert.ok(cookie, 'session cookie set');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.secure, true);
    assert.equal(cookie.sameSite, 'Strict');

    // Create one through the form.
    const form = page.locator('#create-form');
    await form.getByLabel('Username').fill('carol');
    await form.getByLabel('SIP password').fill('secret');
    await form.getByRole('button', { name: 'Create subscriber' }).click();
    await page.getByText('Created sip:carol@example.com').waitFor();

    await page.getByPlaceholder('Find by name, AoR, e-mail').fill('bob');
    await page.getByRole('button', { name: 'Find' }).click();
    await page.getByRole('cell', { name: 'sip:bob@example.com' }).click();
    await page.getByRole('checkbox', { name: 'international' }).check();
    await page.getByText('Granted international for sip:bob@example.com').waitFor();
    await page.getByText('Balance: 0.00 EUR').waitFor();
    await page.getByLabel('Amount').fill('15');
    await page.getByLabel('Reason').fill('welcome credit');
    await page.getByRole('button', { name: 'Add credit' }).click();
    await page.getByText('Credit added to sip:bob@example.com: balance 15.00 EUR').waitFor();
    await page.screenshot({ path: join(SHOTS, 'admin-subscriber.png'), fullPage: true });

    const rec = await until(async () => {
      const r = await recordOf('sip:bob@example.com');
      return r?.privileges.includes('international') ? r : undefined;
    }, 'the privilege on the topic');
    assert.equal(rec.displayName, 'Bob Example');
    const log = await p.api('GET', '/api/v1/audit?pageSize=10');
    for (const action of ['grant', 'credit']) {
      assert.ok(
        log.body.items.some(
          (e: { actor: string; action: string }) => e.actor === 'web:admin' && e.action === action,
        ),
        action,
      );
    }
  } finally {
    await ctx.close();
  }
});
