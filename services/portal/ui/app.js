/* global document, fetch, FormData, URLSearchParams, confirm */
// The portal's web UI: a small page over /api/v1, signed in with the session
// cookie; every change sends the session's CSRF token in X-CSRF-Token. The API
// is the only source of truth: every screen reads it again after a change.
import { crud, el, showFieldError, clearFieldErrors } from './crud.js';
import { ladder } from './ladder.js';

const $ = (sel) => document.querySelector(sel);
let csrf = null;
let page = 1;
let search = '';
let selected = null;
/** name → description, from GET /api/v1/privileges. */
let known = {};

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
    known = Object.fromEntries(
      (await api('GET', '/api/v1/privileges')).items.map((x) => [x.name, x.description]),
    );
    // The tab is chosen before the view shows: a click on another tab while
    // the privileges load must not be undone by this.
    showTab('tab-subscribers');
    show('admin-view');
    await loadDomains();
    await loadSubscribers();
  } else {
    await loadMe();
  }
}

async function loadDomains() {
  const d = await api('GET', '/api/v1/domains?pageSize=500');
  $('#create-form select[name=domain]').replaceChildren(...d.items.map((x) => option(x.domain)));
  $('#domain-plan-form select[name=domain]').replaceChildren(
    ...d.items.map((x) => el('option', { value: x.id, text: x.domain })),
  );
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
    ...[...new Set([...Object.keys(known), ...s.privileges])].map((p) => {
      const label = document.createElement('label');
      label.className = 'row';
      if (known[p]) label.title = known[p];
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
      const desc = el('small', { class: 'hint', text: known[p] ?? 'custom privilege' });
      return el('div', { class: 'privilege' }, label, desc);
    }),
  );
  $('#rateplan-form input[name=ratePlan]').value = s.ratePlan ?? '';
  $('#device-new').hidden = true;
  await showDetailLists(s);
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
  // The view shows once it names the account, never empty.
  show('subscriber-view');
  const lists = featureLists(me.id, 'me');
  $('#me-lists').replaceChildren(...lists.map((l) => l.root));
  await Promise.all(lists.map((l) => l.load()));
  await loadCdrs();
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

// --- administration tabs -------------------------------------------------------

function showTab(id) {
  for (const b of document.querySelectorAll('nav.tabs button')) {
    b.setAttribute('aria-pressed', String(b.dataset.tab === id));
    $(`#${b.dataset.tab}`).hidden = b.dataset.tab !== id;
  }
}

for (const b of document.querySelectorAll('nav.tabs button')) {
  b.addEventListener('click', async () => {
    showTab(b.dataset.tab);
    try {
      if (b.dataset.tab === 'tab-routing') await loadRouting();
      if (b.dataset.tab === 'tab-rates') await loadDomains();
    } catch (e) {
      flash(e.message, true);
    }
  });
}

const enc = encodeURIComponent;
const yesNo = (v) => (v === false ? 'no' : 'yes');
const when = (iso) => (iso ? new Date(iso).toLocaleString() : '');

/** Forwarding, block/allow list and speed dials of one subscriber (an administrator's or its own). */
function featureLists(subscriberId, prefix) {
  const base = `/api/v1/subscribers/${subscriberId}`;
  const kind = (path, spec) =>
    crud({
      flash,
      list: async () => (await api('GET', `${base}/${path}`)).items,
      create: (b) => api('POST', `${base}/${path}`, b),
      update: (item, b) => api('PATCH', `${base}/${path}/${item.id}`, b),
      remove: (item) => api('DELETE', `${base}/${path}/${item.id}`),
      ...spec,
      id: `${prefix}-${path}`,
    });
  const target = {
    name: 'target',
    label: 'Target',
    required: true,
    placeholder: 'sip:bob@example.com or +4930123456',
  };
  return [
    kind('forwarding', {
      title: 'Call forwarding',
      noun: 'forwarding rule',
      rowKey: (x) => x.condition,
      columns: [
        { key: 'condition', label: 'When' },
        { key: 'target', label: 'Target' },
        { key: 'timeout', label: 'Ring (s)' },
        { key: 'enabled', label: 'On', format: (x) => yesNo(x.enabled) },
      ],
      fields: [
        {
          name: 'condition',
          label: 'When',
          type: 'select',
          required: true,
          options: () => ['always', 'busy', 'no-answer', 'unavailable'].map((v) => [v]),
        },
        target,
        {
          name: 'timeout',
          label: 'Ring for (seconds, no-answer)',
          type: 'number',
          placeholder: '20',
        },
        { name: 'enabled', label: 'Enabled', type: 'checkbox', checked: true },
      ],
    }),
    kind('blocklist', {
      title: 'Block and allow list',
      noun: 'block list entry',
      rowKey: (x) => `${x.direction} ${x.pattern}`,
      columns: [
        { key: 'direction', label: 'Calls' },
        { key: 'pattern', label: 'Number or address' },
        { key: 'action', label: 'Action', format: (x) => x.action ?? 'block' },
      ],
      fields: [
        {
          name: 'direction',
          label: 'Direction',
          type: 'select',
          required: true,
          options: () => ['incoming', 'outgoing'].map((v) => [v]),
        },
        {
          name: 'pattern',
          label: 'Number, prefix* or SIP address',
          required: true,
          placeholder: '+4990* or anonymous',
        },
        {
          name: 'action',
          label: 'Action',
          type: 'select',
          options: () => ['block', 'allow'].map((v) => [v]),
        },
      ],
    }),
    kind('speed-dials', {
      title: 'Speed dials',
      noun: 'speed dial',
      rowKey: (x) => x.code,
      columns: [
        { key: 'code', label: 'Code' },
        { key: 'target', label: 'Calls' },
      ],
      fields: [{ name: 'code', label: 'Code (1-3 digits)', required: true, inputmode: 'numeric' }, target],
    }),
  ];
}

async function showDetailLists(s) {
  const aliases = crud({
    id: 'detail-aliases',
    title: 'Aliases and DIDs',
    noun: 'alias',
    plural: 'aliases',
    flash,
    editable: false,
    rowKey: (x) => x.aor,
    columns: [
      { key: 'aor', label: 'Address' },
      { key: 'kind', label: 'Kind' },
    ],
    fields: [
      { name: 'username', label: 'User or number', required: true, placeholder: '+4930123456 or sales' },
      {
        name: 'domain',
        label: 'Domain',
        type: 'select',
        options: () => [...$('#create-form select[name=domain]').options].map((o) => [o.value]),
      },
      {
        name: 'kind',
        label: 'Kind',
        type: 'select',
        required: true,
        options: () => [
          ['alias', 'alias'],
          ['did', 'DID (a number from a carrier)'],
        ],
      },
    ],
    list: async () => (await api('GET', `/api/v1/aliases?subscriberId=${s.id}&pageSize=500`)).items,
    create: (b) => api('POST', '/api/v1/aliases', { ...b, subscriberId: s.id }),
    remove: (x) => api('DELETE', `/api/v1/aliases/${x.id}`),
  });
  const devices = crud({
    id: 'detail-devices',
    title: 'Devices (auto-provisioning)',
    noun: 'device',
    flash,
    editable: false,
    rowKey: (x) => x.mac,
    columns: [
      { key: 'vendor', label: 'Vendor' },
      { key: 'model', label: 'Model' },
      { key: 'mac', label: 'MAC' },
      { key: 'lastFetchAt', label: 'Last fetch', format: (x) => when(x.lastFetchAt) || 'never' },
    ],
    fields: [
      {
        name: 'vendor',
        label: 'Vendor',
        type: 'select',
        required: true,
        options: () => ['yealink', 'polycom', 'grandstream', 'cisco-spa', 'linphone'].map((v) => [v]),
      },
      { name: 'model', label: 'Model', required: true, placeholder: 'T46U' },
      { name: 'mac', label: 'MAC address', required: true, placeholder: '00:15:65:aa:bb:cc' },
    ],
    list: async () => (await api('GET', `/api/v1/subscribers/${s.id}/devices`)).items,
    create: (b) => api('POST', `/api/v1/subscribers/${s.id}/devices`, b),
    remove: (x) => api('DELETE', `/api/v1/subscribers/${s.id}/devices/${x.id}`),
    created: (d) => {
      const note = $('#device-new');
      note.hidden = false;
      note.replaceChildren(
        `Device ${d.mac}: provisioning URL `,
        el('code', { class: 'prov-url', text: d.provisioningUrl }),
        ', password ',
        el('code', { class: 'prov-password', text: d.provisioningPassword }),
        ' (shown once). Linphone: ',
        el('code', { class: 'prov-token-url', text: d.provisioningUrlWithToken }),
      );
    },
  });
  const lists = [aliases, ...featureLists(s.id, 'detail'), devices];
  $('#detail-lists').replaceChildren(...lists.map((l) => l.root));
  await Promise.all(lists.map((l) => l.load().catch((e) => flash(e.message, true))));
}

$('#privilege-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (!selected) return;
  const p = fields(ev.target).privilege ?? '';
  clearFieldErrors(ev.target);
  try {
    await api('PUT', `/api/v1/subscribers/${selected.id}/privileges/${enc(p)}`);
    ev.target.reset();
    await openDetail(selected.id);
    await loadSubscribers();
    flash(`Granted ${p} for ${selected.aor}`);
  } catch (e) {
    showFieldError(ev.target, e);
    flash(e.message, true);
  }
});

$('#rateplan-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (!selected) return;
  const plan = fields(ev.target).ratePlan ?? null;
  clearFieldErrors(ev.target);
  try {
    const s = await api('PATCH', `/api/v1/subscribers/${selected.id}`, { ratePlan: plan });
    selected = s;
    flash(plan ? `Rate plan of ${s.aor}: ${plan}` : `${s.aor} uses the domain's rate plan`);
  } catch (e) {
    showFieldError(ev.target, e);
    flash(e.message, true);
  }
});

// --- gateways, routes, trusted addresses, RADIUS clients -------------------------

let routingLists;
let gateways = [];

function routing(path, spec) {
  return crud({
    flash,
    list: async () => (await api('GET', `/api/v1/${path}?pageSize=500`)).items,
    create: (b) => api('POST', `/api/v1/${path}`, b),
    update: (x, b) => api('PATCH', `/api/v1/${path}/${x.id}`, b),
    remove: (x) => api('DELETE', `/api/v1/${path}/${x.id}`),
    id: `routing-${path}`,
    ...spec,
  });
}

async function loadRouting() {
  if (!routingLists) {
    const gw = routing('gateways', {
      title: 'Gateways',
      noun: 'gateway',
      rowKey: (x) => x.name,
      columns: [
        { key: 'name', label: 'Name' },
        { key: 'address', label: 'Address' },
        { key: 'transport', label: 'Transport', format: (x) => x.transport ?? 'udp' },
        { key: 'prefix', label: 'Add prefix' },
        { key: 'strip', label: 'Strip' },
      ],
      fields: [
        { name: 'name', label: 'Name', required: true },
        {
          name: 'address',
          label: 'Address (host:port)',
          required: true,
          placeholder: 'gw1.example.net:5060',
        },
        {
          name: 'transport',
          label: 'Transport',
          type: 'select',
          options: () => ['udp', 'tcp', 'tls'].map((v) => [v]),
        },
        { name: 'prefix', label: 'Digits put before the number', placeholder: '00' },
        { name: 'strip', label: 'Leading digits removed', type: 'number' },
      ],
      onChange: async () => {
        gateways = routingLists[0].items();
        await routingLists[1].load();
      },
    });
    const rt = routing('routes', {
      title: 'Routes',
      noun: 'route',
      rowKey: (x) => x.name,
      columns: [
        { key: 'name', label: 'Name' },
        { key: 'prefix', label: 'Prefix', format: (x) => x.prefix || '(any)' },
        {
          key: 'gatewayIds',
          label: 'Gateways, in order',
          format: (x) => x.gatewayIds.map((id) => gateways.find((g) => g.id === id)?.name ?? id).join(', '),
        },
        { key: 'priority', label: 'Priority' },
      ],
      fields: [
        { name: 'name', label: 'Name', required: true },
        { name: 'prefix', label: 'Number prefix (empty: every number)', nullable: false, placeholder: '+49' },
        {
          name: 'gatewayIds',
          label: 'Gateways',
          type: 'multi',
          required: true,
          options: () => gateways.map((g) => [g.id, g.name]),
        },
        { name: 'priority', label: 'Priority (higher first)', type: 'number' },
      ],
      toBody: (b, editing) => (editing || b.prefix !== undefined ? b : { ...b, prefix: '' }),
    });
    const trusted = routing('trusted-addresses', {
      title: 'Trusted addresses',
      noun: 'trusted address',
      plural: 'trusted addresses',
      rowKey: (x) => x.cidr,
      columns: [
        { key: 'cidr', label: 'Address or network' },
        { key: 'description', label: 'Description' },
      ],
      fields: [
        { name: 'cidr', label: 'Address or network (CIDR)', required: true, placeholder: '192.0.2.0/24' },
        { name: 'description', label: 'Description' },
      ],
    });
    const radius = routing('radius-clients', {
      title: 'RADIUS clients',
      noun: 'RADIUS client',
      rowKey: (x) => x.name,
      columns: [
        { key: 'name', label: 'Name' },
        { key: 'cidr', label: 'Address or network' },
      ],
      fields: [
        { name: 'name', label: 'Name', required: true },
        { name: 'cidr', label: 'Address or network (CIDR)', required: true },
        { name: 'secret', label: 'Shared secret (empty keeps it when editing)', nullable: false },
      ],
    });
    routingLists = [gw, rt, trusted, radius];
    $('#routing-lists').replaceChildren(...routingLists.map((l) => l.root));
  }
  gateways = await routingLists[0].load();
  await Promise.all(routingLists.slice(1).map((l) => l.load()));
}

// --- rate plans -----------------------------------------------------------------

for (const [file, text] of [
  ['ratesFile', 'ratesCsv'],
  ['periodsFile', 'periodsCsv'],
]) {
  $(`#rate-plan-form input[name=${file}]`).addEventListener('change', async (ev) => {
    const f = ev.target.files?.[0];
    if (f) $(`#rate-plan-form textarea[name=${text}]`).value = await f.text();
  });
}

$('#rate-plan-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = ev.target;
  clearFieldErrors(form);
  const f = fields(form);
  const body = { currency: f.currency, ratesCsv: f.ratesCsv };
  if (f.periodsCsv) body.periodsCsv = f.periodsCsv;
  if (f.timezone) body.timezone = f.timezone;
  if (f.effectiveFrom) body.effectiveFrom = new Date(f.effectiveFrom).toISOString();
  try {
    const r = await api('PUT', `/api/v1/rate-plans/${enc(f.planId ?? '')}`, body);
    flash(`Rate plan ${r.planId} imported: ${r.rates} rate${r.rates === 1 ? '' : 's'}`);
  } catch (e) {
    showFieldError(form, e);
    flash(e.message, true);
  }
});

// The version in force, into the form: change it and upload it again as a new version.
$('#rate-plan-load').addEventListener('click', async () => {
  const form = $('#rate-plan-form');
  clearFieldErrors(form);
  const id = fields(form).planId ?? '';
  try {
    const v = await api('GET', `/api/v1/rate-plans/${enc(id)}`);
    for (const k of ['currency', 'timezone', 'ratesCsv', 'periodsCsv']) form.elements[k].value = v[k];
    form.elements.effectiveFrom.value = '';
    flash(`Loaded rate plan ${v.planId} (in force since ${when(v.effectiveFrom)})`);
  } catch (e) {
    showFieldError(form, e);
    flash(e.status === 404 ? `No rate plan ${id}` : e.message, true);
  }
});

$('#domain-plan-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = ev.target;
  clearFieldErrors(form);
  const f = fields(form);
  try {
    const d = await api('PUT', `/api/v1/domains/${f.domain}/rate-plan`, { planId: f.planId });
    flash(`Rate plan of ${d.domain}: ${f.planId}`);
  } catch (e) {
    showFieldError(form, e);
    flash(e.message, true);
  }
});

// --- SIP trace ------------------------------------------------------------------

function showMessage(m) {
  const pre = $('#trace-message');
  pre.hidden = false;
  pre.textContent = `${m.time} ${m.dir === 'in' ? 'from' : 'to'} ${m.transport.toUpperCase()} ${m.peer}\n\n${m.message}`;
}

function showCall(callId, messages) {
  $('#trace-title').hidden = false;
  $('#trace-title').textContent = `Call-ID ${callId}: ${messages.length} messages`;
  $('#trace-message').hidden = true;
  $('#trace-ladder').replaceChildren(ladder(messages, showMessage));
}

$('#trace-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = ev.target;
  clearFieldErrors(form);
  const f = fields(form);
  const q = new URLSearchParams();
  if (f.callId) q.set('callId', f.callId);
  if (f.number) q.set('number', f.number);
  if (f.since) q.set('since', new Date(f.since).toISOString());
  $('#trace-ladder').replaceChildren();
  $('#trace-title').hidden = true;
  $('#trace-message').hidden = true;
  try {
    const { messages } = await api('GET', `/api/v1/sip-trace?${q}`);
    const calls = new Map();
    for (const m of messages) {
      if (!calls.has(m.callId)) calls.set(m.callId, []);
      calls.get(m.callId).push(m);
    }
    const table = $('#trace-calls');
    table.hidden = calls.size < 2;
    $('#trace-calls tbody').replaceChildren(
      ...[...calls].map(([id, ms]) =>
        el(
          'tr',
          { onclick: () => showCall(id, ms) },
          el('td', { text: when(ms[0].time) }),
          el('td', { text: id }),
          el('td', { text: ms[0].summary }),
          el('td', { text: String(ms.length) }),
        ),
      ),
    );
    if (calls.size === 0) flash('No SIP messages found', true);
    else {
      flash(
        `${messages.length} SIP message${messages.length === 1 ? '' : 's'} in ${calls.size} call${calls.size === 1 ? '' : 's'}`,
      );
      if (calls.size === 1) showCall(...[...calls][0]);
    }
  } catch (e) {
    showFieldError(form, e);
    flash(e.message, true);
  }
});

// --- calls (administrators: every account's CDRs) ------------------------------------

/** The search the table shows, and the token of the page after the rows shown. */
let callsQuery;
let callsNext = null;

function cdrResult(c) {
  return c.sipCode ? `${c.disposition} (${c.sipCode})` : c.disposition;
}

async function loadCalls(more) {
  const form = $('#calls-form');
  if (!more) {
    clearFieldErrors(form);
    const f = fields(form);
    callsQuery = new URLSearchParams({ pageSize: '100' });
    if (f.from) callsQuery.set('from', new Date(f.from).toISOString());
    if (f.to) callsQuery.set('to', new Date(f.to).toISOString());
    for (const k of ['account', 'callee', 'disposition', 'gateway']) if (f[k]) callsQuery.set(k, f[k]);
  }
  const q = new URLSearchParams(callsQuery);
  if (more && callsNext) q.set('pageToken', callsNext);
  try {
    const page = await api('GET', `/api/v1/cdrs?${q}`);
    const rows = page.items.map((c) =>
      el(
        'tr',
        { 'data-call-id': c.callId },
        el('td', { text: when(c.startedAt) }),
        el('td', { text: c.account }),
        el('td', { text: c.callee }),
        el('td', { text: String(c.durationSeconds) }),
        el('td', { text: cdrResult(c) }),
        el('td', { text: c.gateway }),
        el('td', { text: `${c.price} ${c.currency}` }),
      ),
    );
    if (more) $('#calls tbody').append(...rows);
    else $('#calls tbody').replaceChildren(...rows);
    if (!more)
      flash(`${rows.length}${page.nextPageToken ? '+' : ''} call${rows.length === 1 ? '' : 's'} found`);
    callsNext = page.nextPageToken;
    $('#calls-more').hidden = !callsNext;
    $('#calls-empty').hidden = $('#calls tbody').children.length > 0;
    // the export reads every page, at the server's own page size rather than the table's 100
    const csvQuery = new URLSearchParams(callsQuery);
    csvQuery.delete('pageSize');
    csvQuery.set('format', 'csv');
    const csv = $('#calls-csv');
    csv.href = `/api/v1/cdrs?${csvQuery}`;
    csv.hidden = false;
  } catch (e) {
    showFieldError(form, e);
    flash(e.message, true);
  }
}

$('#calls-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  await loadCalls(false);
});
$('#calls-more').addEventListener('click', () => loadCalls(true));

// --- call history (self-care) -----------------------------------------------------

async function loadCdrs() {
  if (!selected) return;
  const f = fields($('#cdr-form'));
  const q = new URLSearchParams({ pageSize: '100' });
  if (f.from) q.set('from', new Date(`${f.from}T00:00:00`).toISOString());
  if (f.to) q.set('to', new Date(`${f.to}T23:59:59.999`).toISOString());
  const base = `/api/v1/subscribers/${selected.id}/cdrs`;
  $('#cdr-csv').href = `${base}?${q}&format=csv`;
  let items = [];
  try {
    items = (await api('GET', `${base}?${q}`)).items;
  } catch (e) {
    flash(e.message, true);
  }
  $('#cdrs tbody').replaceChildren(
    ...items.map((c) =>
      el(
        'tr',
        { 'data-call-id': c.callId },
        el('td', { text: when(c.startedAt) }),
        el('td', { text: c.caller }),
        el('td', { text: c.callee }),
        el('td', { text: String(c.billableSeconds) }),
        el('td', { text: cdrResult(c) }),
        el('td', { text: `${c.price} ${c.currency}` }),
      ),
    ),
  );
  $('#cdrs-empty').hidden = items.length > 0;
}

$('#cdr-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  await loadCdrs();
});

start();
