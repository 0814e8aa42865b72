/**
 * The web UI in headless Chromium (playwright-core, Debian's /usr/bin/chromium):
 * an administrator signs in and creates a subscriber, grants a privilege; the
 * subscriber signs in and changes the SIP password. Screenshots of the pages
 * go to services/portal/test-results/ for review.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { TOPICS, type SubscriberRecord } from '@switchboard/contracts';
import { ha1 } from '@switchboard/sip';
import { startTestPortal, until, type TestPortal } from './test-support';

const SHOTS = join(import.meta.dirname, '..', 'test-results');
let p: TestPortal;
let browser: Browser;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  p = await startTestPortal();
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

test('an administrator signs in, creates a subscriber and grants it the international privilege', async () => {
  assert.equal(
    (await p.api('POST', '/api/v1/users', { username: 'admin', password: 'admin-password' })).status,
    201,
  );
  const ctx = await browser.newContext({ viewport: { width: 390, height: 844 } }); // a phone screen
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

    const form = page.locator('#create-form');
    await form.getByLabel('Username').fill('alice');
    await form.getByLabel('SIP password').fill('secret');
    await form.getByLabel('Display name').fill('Alice Example');
    await form.getByLabel('Web password').fill('alice-web-pw');
    await form.getByRole('button', { name: 'Create subscriber' }).click();
    await page.getByText('Created sip:alice@example.com').waitFor();
    await page.getByRole('cell', { name: 'sip:alice@example.com' }).waitFor();

    await page.getByPlaceholder('Find by name, AoR, e-mail').fill('alice');
    await page.getByRole('button', { name: 'Find' }).click();
    await page.getByRole('cell', { name: 'sip:alice@example.com' }).click();
    await page.getByRole('checkbox', { name: 'international' }).check();
    await page.getByText('Granted international for sip:alice@example.com').waitFor();
    await page.screenshot({ path: join(SHOTS, 'admin-subscribers.png'), fullPage: true });

    const rec = await until(
      async () =>
        [...(await p.topic<SubscriberRecord>(TOPICS.subscribers)).values()].find(
          (r) => r.aor === 'sip:alice@example.com' && r.privileges.includes('international'),
        ),
      'the subscriber with the privilege on the topic',
    );
    assert.equal(rec.displayName, 'Alice Example');
    // The UI's changes are the signed-in administrator's in the audit log.
    const log = await p.api('GET', '/api/v1/audit?pageSize=5');
    assert.ok(
      log.body.items.some(
        (e: { actor: string; action: string }) => e.actor === 'web:admin' && e.action === 'grant',
      ),
    );
  } finally {
    await ctx.close();
  }
});

test('a subscriber signs in, sees the account and changes the SIP password', async () => {
  const created = await p.api('POST', '/api/v1/subscribers', {
    username: 'bob',
    password: 'b0b-secret',
    webPassword: 'bob-web-pw',
  });
  assert.equal(created.status, 201);
  const ctx = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await ctx.newPage();
  try {
    await signIn(page, 'bob@example.com', 'bob-web-pw');
    await page.getByRole('heading', { name: 'My account' }).waitFor();
    assert.equal(await page.locator('#me-aor').textContent(), 'sip:bob@example.com');
    await page.getByLabel('New SIP password').fill('n3w-b0b-secret');
    await page.getByRole('button', { name: 'Change SIP password' }).click();
    await page.getByText('SIP password changed').waitFor();
    await page.screenshot({ path: join(SHOTS, 'subscriber-account.png'), fullPage: true });
    await until(
      async () =>
        (await p.topic<SubscriberRecord>(TOPICS.subscribers)).get('sip:bob@example.com')?.ha1 ===
        ha1('bob', 'example.com', 'n3w-b0b-secret', 'MD5'),
      'the new HA1 published',
    );
    // The subscriber's session reaches no administrator route.
    const status = await page.evaluate(async () => (await fetch('/api/v1/subscribers')).status);
    assert.equal(status, 403);
  } finally {
    await ctx.close();
  }
});
