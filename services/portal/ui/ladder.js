/* global document */
// A call's SIP messages as a ladder diagram (SVG): one column per host (the
// first peer heard from, then the proxy, then the others in the order they
// appear), one arrow per message with its method or status and its time.

const NS = 'http://www.w3.org/2000/svg';
const COL = 190;
const ROW = 34;
const TOP = 46;
const LEFT = 90;

function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** INVITE, 180 Ringing, …: what an arrow says. */
export function label(summary) {
  const m = /^SIP\/2\.0\s+(\d{3})\s*(.*)$/.exec(summary);
  if (m) return `${m[1]} ${m[2]}`.trim();
  return summary.split(' ')[0];
}

/** The hosts, in column order. */
export function columns(messages) {
  const peers = [];
  for (const m of messages) if (!peers.includes(m.peer)) peers.push(m.peer);
  return peers.length === 0 ? ['proxy'] : [peers[0], 'proxy', ...peers.slice(1)];
}

/** messages: the trace's entries (time, dir, peer, summary, …), oldest first; onPick(message) on a click. */
export function ladder(messages, onPick) {
  const cols = columns(messages);
  const x = (host) => LEFT + cols.indexOf(host) * COL + COL / 2;
  const width = LEFT + cols.length * COL;
  const height = TOP + messages.length * ROW + 20;
  const root = svg('svg', {
    class: 'ladder',
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': `SIP ladder: ${messages.length} messages between ${cols.length} hosts`,
  });
  const defs = svg('defs');
  const marker = svg('marker', {
    id: 'arrowhead',
    markerWidth: 10,
    markerHeight: 8,
    refX: 9,
    refY: 4,
    orient: 'auto',
    markerUnits: 'userSpaceOnUse',
  });
  marker.append(svg('path', { d: 'M0,0 L10,4 L0,8 z', fill: '#2557d6' }));
  defs.append(marker);
  root.append(defs);

  for (const host of cols) {
    const g = svg('g', { class: 'host', 'data-host': host });
    g.append(
      svg(
        'text',
        { x: x(host), y: 18, 'text-anchor': 'middle', 'font-weight': 600, 'font-size': 13 },
        host === 'proxy' ? 'proxy' : host,
      ),
      svg('line', {
        x1: x(host),
        y1: 28,
        x2: x(host),
        y2: height - 6,
        stroke: '#9aa3b2',
        'stroke-dasharray': '4 3',
      }),
    );
    root.append(g);
  }

  const t0 = messages.length ? Date.parse(messages[0].time) : 0;
  messages.forEach((m, i) => {
    const y = TOP + i * ROW + 14;
    const [from, to] = m.dir === 'in' ? [m.peer, 'proxy'] : ['proxy', m.peer];
    const x1 = x(from);
    const x2 = x(to);
    const text = label(m.summary);
    const ms = Date.parse(m.time) - t0;
    const g = svg('g', {
      class: 'arrow',
      'data-index': i,
      'data-from': from,
      'data-to': to,
      role: 'button',
      tabindex: 0,
      'aria-label': `${text} from ${from} to ${to} at +${(ms / 1000).toFixed(3)} s`,
    });
    const reply = /^\d/.test(text);
    g.append(
      // The whole row takes the click, not only the thin line and the text.
      svg('rect', {
        x: 0,
        y: y - ROW / 2 - 4,
        width,
        height: ROW,
        fill: 'transparent',
        'pointer-events': 'all',
      }),
      svg('text', { x: 6, y: y + 4, 'font-size': 11, fill: '#5b6475' }, `+${(ms / 1000).toFixed(3)}s`),
      svg('line', {
        x1,
        y1: y,
        x2: x2 + (x2 > x1 ? -2 : 2),
        y2: y,
        stroke: reply ? '#1e8e3e' : '#2557d6',
        'stroke-width': 2,
        'marker-end': 'url(#arrowhead)',
      }),
      svg(
        'text',
        { x: (x1 + x2) / 2, y: y - 6, 'text-anchor': 'middle', 'font-size': 12, class: 'arrow-label' },
        text,
      ),
    );
    g.addEventListener('click', () => onPick?.(m, i));
    g.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') onPick?.(m, i);
    });
    root.append(g);
  });
  return root;
}
