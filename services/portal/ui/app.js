/* global document, fetch, FormData, URLSearchParams, confirm */
// The portal's web UI: a small page over /api/v1, signed in with the session
// cookie; every change sends the session's CSRF token in X-CSRF-Token.
const $ = (sel) => document.querySelector(sel);
let csrf = null;
let page = 1;
let search = '';
let selected = null;
const KNOWN = ['pstn', 'international', 'premium-rate', 'set-caller-id'];

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf;
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  const text = await res.text();
  const data = text ? JSON.parse(text) : undefined;
  if (!res.ok) {
    const err = new Error(data?.message ?? `${res.status}`);
    err.status = res.status;
    err.field = data?.field;
    throw err;
  }
  return data;
}

function flash(text, error = false) {
  const f = $('#flash');
  f.textContent = text;
  f.className = error ? 'error' : '';
  f.hidden = !text;
}

function show(view) {
  for (const id of ['login-view', 'admin-view', 'subscriber-view']) $(`#${id}`).hidden = id !== view;
}

/** Plain object of a form's non-empty fields. */
function fields(form) {
  const out = {};
  for (const [k, v] of new FormData(form)) if (String(v) !== '') out[k] = String(v);
  return out;
}

async function start() {
  try {
    const s = await api('GET', '/api/v1/session');
    await enter(s);
  } catch {
    csrf = null;
    $('#who').hidden = true;
    show('login-view');
    await loadSignup();
  }
}

async function loadSignup() {
  const d = await api('GET', '/api/v1/signup').catch(() => ({ items: [] }));
  $('#signup').hidden = d.items.length === 0;
  $('#signup-form select[name=domain]').replaceChildren(...d.items.map(option));
}

function option(value) {
  const o = document.createElement('option');
  o.value = value;
  o.textContent = value;
  return o;
}

const money = (b) => (b.pending ? 'being updated…' : `${b.balance} ${b.currency}`);

async function enter(s) {
  csrf = s.csrfToken;
  $('#who').hidden = false;
  $('#who-name').textContent = s.name;
  if (s.role === 'admin') {
    show('admin-view');
    await loadDomains();
    await loadSubscribers();
  } else {
    show('subscriber-view');
    await loadMe();
  }
}

async function loadDomains() {
  const d = await api('GET', '/api/v1/domains?pageSize=500');
  $('#create-form select[name=domain]').replaceChildren(...d.items.map((x) => option(x.domain)));
}

async function loadSubscribers() {
  const q = new URLSearchParams({ page: String(page), pageSize: '20' });
  if (search) q.set('search', search);
  const r = await api('GET', `/api/v1/subscribers?${q}`);
  const rows = r.items.map((s) => {
    const tr = document.createElement('tr');
    tr.dataset.id = s.id;
    for (const text of [
      s.aor,
      s.displayName ?? '',
      s.privileges.join(', '),
      s.enabled ? 'active' : 'suspended',
    ]) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.append(td);
    }
    tr.addEventListener('click', () => openDetail(s.id));
    return tr;
  });
  $('#subscribers tbody').replaceChildren(...rows);
  const pages = Math.max(1, Math.ceil(r.total / r.pageSize));
  const pager = $('#pager');
  pager.replaceChildren();
  pager.append(`${r.total} subscriber${r.total === 1 ? '' : 's'}, page ${r.page} of ${pages} `);
  if (page > 1) pager.append(button('Previous', () => ((page -= 1), loadSubscribers())));
  if (page < pages) pager.append(button('Next', () => ((page += 1), loadSubscribers())));
}

function button(text, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.addEventListener('click', onClick);
  return b;
}

async function openDetail(id) {
  const s = await api('GET', `/api/v1/subscribers/${id}`);
  selected = s;
  $('#detail').hidden = false;
  $('#detail-aor').textContent = s.aor;
  const box = $('#detail-privileges');
  box.replaceChildren(
    ...[...new Set([...KNOWN, ...s.privileges])].map((p) => {
      const label = document.createElement('label');
      label.className = 'row';
      const cb = document.createElement('input');
      cb.type = 'checkbox';
      cb.name = p;
      cb.checked = s.privileges.includes(p);
      cb.addEventListener('change', async () => {
        try {
          await api(cb.checked ? 'PUT' : 'DELETE', `/api/v1/subscribers/${s.id}/privileges/${p}`);
          flash(`${cb.checked ? 'Granted' : 'Removed'} ${p} for ${s.aor}`);
          await loadSubscribers();
        } catch (e) {
          flash(e.message, true);
        }
      });
      label.append(cb, p);
      return label;
    }),
  );
  $('#detail-toggle').textContent = s.enabled ? 'Suspend' : 'Reactivate';
  $('#detail-balance').textContent = await api('GET', `/api/v1/subscribers/${s.id}/balance`).then(
    money,
    () => 'n/a',
  );
}

$('#credit-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (!selected) return;
  try {
    const b = await api('POST', `/api/v1/subscribers/${selected.id}/credit`, fields(ev.target));
    ev.target.reset();
    $('#detail-balance').textContent = money(b);
    flash(`Credit added to ${selected.aor}: balance ${money(b)}`);
  } catch (e) {
    flash(e.message, true);
  }
});

$('#detail-toggle').addEventListener('click', async () => {
  if (!selected) return;
  try {
    await api('PATCH', `/api/v1/subscribers/${selected.id}`, { enabled: !selected.enabled });
    flash(`${selected.aor} ${selected.enabled ? 'suspended' : 'reactivated'}`);
    await openDetail(selected.id);
    await loadSubscribers();
  } catch (e) {
    flash(e.message, true);
  }
});

$('#detail-delete').addEventListener('click', async () => {
  if (!selected || !confirm(`Remove ${selected.aor}?`)) return;
  try {
    await api('DELETE', `/api/v1/subscribers/${selected.id}`);
    flash(`Removed ${selected.aor}`);
    selected = null;
    $('#detail').hidden = true;
    await loadSubscribers();
  } catch (e) {
    flash(e.message, true);
  }
});

async function loadMe() {
  const me = await api('GET', '/api/v1/me');
  $('#me-aor').textContent = me.aor;
  $('#me-username').textContent = me.username;
  $('#me-domain').textContent = me.domain;
  $('#me-privileges').textContent = me.privileges.join(', ') || 'none';
  selected = me;
  $('#me-balance').textContent = await api('GET', `/api/v1/subscribers/${me.id}/balance`).then(
    money,
    () => 'n/a',
  );
}

$('#voucher-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  try {
    const b = await api('POST', `/api/v1/subscribers/${selected.id}/vouchers`, fields(ev.target));
    ev.target.reset();
    $('#me-balance').textContent = money(b);
    flash(`Voucher redeemed: balance ${money(b)}`);
  } catch (e) {
    flash(e.status === 404 ? 'Unknown or already used voucher' : e.message, true);
  }
});

$('#signup-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = fields(ev.target);
  try {
    await api('POST', '/api/v1/signup', f);
    const s = await api('POST', '/api/v1/session', {
      login: `${f.username}@${f.domain}`,
      password: f.webPassword,
    });
    ev.target.reset();
    flash('Welcome! Your account is ready.');
    await enter(s);
  } catch (e) {
    flash(e.message, true);
  }
});

$('#login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  try {
    const s = await api('POST', '/api/v1/session', fields(ev.target));
    ev.target.reset();
    flash('');
    await enter(s);
  } catch (e) {
    flash(e.status === 429 ? 'Too many failed attempts: try again later' : 'Wrong login or password', true);
  }
});

$('#logout').addEventListener('click', async () => {
  await api('DELETE', '/api/v1/session').catch(() => undefined);
  flash('Signed out');
  await start();
});

$('#search-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  search = fields(ev.target).search ?? '';
  page = 1;
  await loadSubscribers();
});

$('#create-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  try {
    const s = await api('POST', '/api/v1/subscribers', fields(ev.target));
    ev.target.reset();
    flash(`Created ${s.aor}`);
    await loadDomains();
    await loadSubscribers();
  } catch (e) {
    flash(e.field ? `${e.message}` : e.message, true);
  }
});

$('#sip-password-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  try {
    await api('PATCH', '/api/v1/me', fields(ev.target));
    ev.target.reset();
    flash('SIP password changed: update it on your phones');
  } catch (e) {
    flash(e.message, true);
  }
});

$('#web-password-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  try {
    await api('PATCH', '/api/v1/me', fields(ev.target));
    ev.target.reset();
    flash('Web password changed');
  } catch (e) {
    flash(e.message, true);
  }
});

start();
