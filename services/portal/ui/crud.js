/* global document, FormData */
// A list of things of one kind over the API: a table of what the API lists,
// each row with Edit and Delete, and one form that adds or (after Edit) changes
// one. Nothing is kept here but what the API answered last: every change is
// sent, then the list is read again. A 4xx answer naming a field marks that
// field and shows the API's message beside it.

/** An element with attributes and children (strings become text). */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) e.append(c);
  return e;
}

/** Marks the input a 4xx named (`field`, or `field.0` for a list) and shows the message by it. */
export function showFieldError(form, err) {
  clearFieldErrors(form);
  if (!err.field) return;
  const name = String(err.field).split('.')[0];
  const input = form.querySelector(`[name="${name}"]`);
  if (!input) return;
  input.setAttribute('aria-invalid', 'true');
  const msg = el('small', { class: 'field-error', role: 'alert', text: err.message });
  const label = input.closest('label');
  if (label) label.append(msg);
  else input.after(msg);
  input.focus();
}

export function clearFieldErrors(form) {
  for (const e of form.querySelectorAll('.field-error')) e.remove();
  for (const e of form.querySelectorAll('[aria-invalid]')) e.removeAttribute('aria-invalid');
}

function input(f) {
  if (f.type === 'select' || f.type === 'multi') {
    const s = el('select', { name: f.name, required: f.required, multiple: f.type === 'multi' });
    return s;
  }
  if (f.type === 'checkbox') return el('input', { name: f.name, type: 'checkbox', checked: f.checked });
  return el('input', {
    name: f.name,
    type: f.type === 'number' ? 'number' : 'text',
    required: f.required,
    placeholder: f.placeholder,
    autocomplete: 'off',
    inputmode: f.inputmode,
  });
}

/**
 * spec: { id, title, noun, columns: [{ key, label, format? }], fields: [{ name, label, type?, required?,
 * options?: () => [value, label][], placeholder?, hint? }], editable?, rowKey(item), list() → items,
 * create(body), update(item, body), remove(item), flash(text, error), onChange?(), created?(item) }
 */
export function crud(spec) {
  let editing = null;
  let items = [];
  const tbody = el('tbody');
  const head = el('tr', {}, ...spec.columns.map((c) => el('th', { text: c.label })), el('th', { text: '' }));
  const empty = el('p', { class: 'empty', text: `No ${spec.plural ?? `${spec.noun}s`} yet.` });
  const submit = el('button', { type: 'submit', text: `Add ${spec.noun}` });
  const cancel = el('button', { type: 'button', class: 'secondary', text: 'Cancel', hidden: true });
  const inputs = new Map();
  const form = el(
    'form',
    { class: 'crud-form', 'aria-label': `${spec.title} form` },
    ...spec.fields.map((f) => {
      const i = input(f);
      inputs.set(f.name, { f, i });
      return el(
        'label',
        { class: f.type === 'checkbox' ? 'check' : undefined },
        f.label,
        i,
        f.hint ? el('small', { class: 'hint', text: f.hint }) : undefined,
      );
    }),
    el('div', { class: 'row' }, submit, cancel),
  );
  const root = el(
    'section',
    { class: 'crud', id: spec.id, 'aria-label': spec.title },
    el('h3', { text: spec.title }),
    el('table', {}, el('thead', {}, head), tbody),
    empty,
    form,
  );

  function fillOptions() {
    for (const { f, i } of inputs.values()) {
      if (!f.options) continue;
      const keep = [...i.selectedOptions].map((o) => o.value);
      const opts = f.options().map(([value, label]) => el('option', { value, text: label ?? value }));
      if (f.type === 'select' && !f.required) opts.unshift(el('option', { value: '', text: '—' }));
      i.replaceChildren(...opts);
      for (const o of i.options) o.selected = keep.includes(o.value);
    }
  }

  function reset() {
    editing = null;
    form.reset();
    clearFieldErrors(form);
    submit.textContent = `Add ${spec.noun}`;
    cancel.hidden = true;
    fillOptions();
  }

  /** The body from the form: empty optional fields left out when adding, null (removed) when changing. */
  function body() {
    const out = {};
    const data = new FormData(form);
    for (const { f, i } of inputs.values()) {
      let v;
      if (f.type === 'checkbox') v = i.checked;
      else if (f.type === 'multi') v = data.getAll(f.name).map(String);
      else {
        const s = String(data.get(f.name) ?? '').trim();
        if (s === '') v = undefined;
        else v = f.type === 'number' ? Number(s) : s;
      }
      if (v === undefined) {
        if (editing && !f.required && f.nullable !== false) out[f.name] = null;
        continue;
      }
      out[f.name] = v;
    }
    return spec.toBody ? spec.toBody(out, editing) : out;
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearFieldErrors(form);
    try {
      const b = body();
      if (editing) {
        await spec.update(editing, b);
        spec.flash(`Saved ${spec.noun} ${spec.rowKey(editing)}`);
      } else {
        const made = await spec.create(b);
        spec.flash(`Added ${spec.noun} ${spec.rowKey(made)}`);
        spec.created?.(made);
      }
      reset();
      await load();
      spec.onChange?.();
    } catch (e) {
      showFieldError(form, e);
      spec.flash(e.message, true);
    }
  });
  cancel.addEventListener('click', reset);

  function edit(item) {
    editing = item;
    fillOptions();
    for (const { f, i } of inputs.values()) {
      const v = item[f.name];
      if (f.type === 'checkbox') i.checked = v !== false;
      else if (f.type === 'multi') for (const o of i.options) o.selected = (v ?? []).includes(o.value);
      else i.value = v === undefined || v === null ? '' : String(v);
    }
    submit.textContent = `Save ${spec.noun}`;
    cancel.hidden = false;
    form.querySelector('input,select')?.focus();
  }

  async function remove(item) {
    try {
      await spec.remove(item);
      spec.flash(`Deleted ${spec.noun} ${spec.rowKey(item)}`);
      if (editing?.id === item.id) reset();
      await load();
      spec.onChange?.();
    } catch (e) {
      spec.flash(e.message, true);
    }
  }

  async function load() {
    items = await spec.list();
    tbody.replaceChildren(
      ...items.map((item) => {
        const key = spec.rowKey(item);
        return el(
          'tr',
          { 'data-key': key },
          ...spec.columns.map((c) => {
            const v = c.format ? c.format(item) : item[c.key];
            return el('td', { 'data-label': c.label, text: v === undefined || v === null ? '' : String(v) });
          }),
          el(
            'td',
            { class: 'actions' },
            spec.editable === false
              ? undefined
              : el('button', {
                  type: 'button',
                  class: 'secondary',
                  'aria-label': `Edit ${key}`,
                  text: 'Edit',
                  onclick: () => edit(item),
                }),
            el('button', {
              type: 'button',
              class: 'danger',
              'aria-label': `Delete ${key}`,
              text: 'Delete',
              onclick: () => remove(item),
            }),
          ),
        );
      }),
    );
    empty.hidden = items.length > 0;
    if (!editing) fillOptions();
    return items;
  }

  return { root, load, reset, items: () => items };
}
