// The compose deployment can't be run here (no Docker engine), so this test
// checks it against the code: every service command, environment variable,
// port and file it names must exist, and Prometheus must scrape every service.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parse } from 'yaml';
import { loadConfig, platformSpec, type ConfigSpec } from '@switchboard/platform';
import { startNodeFlags } from '../cli/node-flags';
import { SERVICES } from '../cli/targets';

const root = join(import.meta.dirname, '..');
const read = (p: string) => parse(readFileSync(join(root, p), 'utf8'), { merge: true });

interface ComposeService {
  build?: { context: string; dockerfile: string };
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
}
const compose = read('deploy/docker-compose.yml') as { services: Record<string, ComposeService> };
const ours = Object.entries(compose.services).filter(([, s]) => s.build);

test('the root docker-compose.yml includes deploy/docker-compose.yml', () => {
  const rootCompose = read('docker-compose.yml') as { include: string[] };
  assert.deepEqual(rootCompose.include, ['deploy/docker-compose.yml']);
});

test('infrastructure is the official PostgreSQL, Apache Kafka (KRaft) and Prometheus images', () => {
  assert.match(compose.services.postgres.image!, /^postgres:\d+/);
  assert.match(compose.services.kafka.image!, /^apache\/kafka:3\.9/);
  assert.equal(compose.services.kafka.environment!.KAFKA_PROCESS_ROLES, 'broker,controller');
  assert.match(compose.services.prometheus.image!, /^prom\/prometheus:/);
});

test('every Switchboard container builds from the Dockerfile and starts known targets', () => {
  assert.ok(ours.length > 0);
  const known = new Set(['all', ...SERVICES.map((m) => m.name)]);
  for (const [name, s] of ours) {
    assert.ok(existsSync(join(root, 'deploy', s.build!.context, s.build!.dockerfile)), `${name}: Dockerfile`);
    assert.equal(s.command?.[0], 'start', `${name}: command`);
    const target = /^--target=(.+)$/.exec(s.command?.[1] ?? '')?.[1];
    assert.ok(target, `${name}: --target`);
    for (const t of target.split(',')) assert.ok(known.has(t), `${name}: unknown target ${t}`);
  }
});

test('every environment variable a container sets is a configuration variable, with a valid value', () => {
  const specs: ConfigSpec[] = [platformSpec, ...SERVICES.map((m) => m.configSpec)];
  const knownVars = new Set(specs.flatMap((s) => Object.values(s).map((x) => x.env)));
  for (const [name, s] of ours) {
    for (const v of Object.keys(s.environment ?? {}))
      assert.ok(knownVars.has(v) || v === 'NODE_OPTIONS', `${name}: ${v} is not read by the code`);
    for (const spec of specs) assert.doesNotThrow(() => loadConfig(spec, s.environment ?? {}), `${name}`);
  }
});

test("the SIP proxy's container runs node with the flags of `npm start`", () => {
  const flags = startNodeFlags();
  assert.ok(flags.length > 0, 'npm start gives node no flags');
  assert.equal(compose.services['sip-proxy']!.environment?.NODE_OPTIONS, flags.join(' '));
});

/** Every port a service listens on per its config: settings named *port*, and transport:address:port listeners. */
function listeningPorts(env: Record<string, string>): Set<number> {
  const ports = new Set<number>([loadConfig(platformSpec, env).opsPort]);
  for (const m of SERVICES) {
    for (const [key, setting] of Object.entries(m.configSpec)) {
      if (!/port|listen/i.test(key)) continue;
      const value = loadConfig({ x: setting }, env).x;
      for (const v of Array.isArray(value) ? value : [value]) {
        if (typeof v === 'number') ports.add(v);
        else if (typeof v === 'string' && /:(\d+)$/.test(v)) ports.add(Number(/:(\d+)$/.exec(v)![1]));
      }
    }
  }
  return ports;
}

test('published ports are ports the container listens on', () => {
  for (const [name, s] of ours) {
    const listening = listeningPorts(s.environment ?? {});
    for (const p of s.ports ?? []) {
      // A range (media relay ports) must start and end on the configured bounds.
      for (const end of String(p).split(':').pop()!.split('/')[0].split('-')) {
        assert.ok(listening.has(Number(end)), `${name}: port ${end} is not one it listens on`);
      }
    }
  }
});

test('files mounted into containers exist', () => {
  for (const [name, s] of Object.entries(compose.services)) {
    for (const v of s.volumes ?? []) {
      const src = v.split(':')[0];
      if (src.startsWith('.')) assert.ok(existsSync(join(root, 'deploy', src)), `${name}: ${src}`);
    }
  }
});

test('Prometheus scrapes every Switchboard container on its ops port, and promtool accepts the config', () => {
  const prom = read('deploy/prometheus.yml') as {
    scrape_configs: { static_configs: { targets: string[] }[] }[];
  };
  const targets = new Set(prom.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets)));
  for (const [name, s] of ours) {
    const port = loadConfig(platformSpec, s.environment ?? {}).opsPort;
    assert.ok(targets.has(`${name}:${port}`), `prometheus does not scrape ${name}:${port}`);
  }
  const r = spawnSync('promtool', ['check', 'config', join(root, 'deploy/prometheus.yml')], {
    encoding: 'utf8',
  });
  assert.equal(r.error, undefined, 'promtool (Debian package prometheus) is needed: .ci/run installs it');
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('the Dockerfile runs the CLI with a start command', () => {
  const df = readFileSync(join(root, 'Dockerfile'), 'utf8');
  assert.match(df, /ENTRYPOINT \["node", "bin\/switchboard.js"\]/);
  assert.ok(existsSync(join(dirname(join(root, 'Dockerfile')), 'bin/switchboard.js')));
});

test('alerts pass promtool check rules', () => {
  const r = spawnSync('promtool', ['check', 'rules', join(root, 'deploy/alerts.yml')], { encoding: 'utf8' });
  assert.equal(r.error, undefined, 'promtool (Debian package prometheus) is needed: .ci/run installs it');
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

/** Metric names dashboards and alerts use before the service that exports them has landed. */
const PLANNED_METRICS = new Set([
  'switchboard_gateway_up',
  'switchboard_radius_client_timeouts_total',
  'switchboard_radius_client_queue_length',
  'switchboard_voicemail_disk_free_bytes',
  'switchboard_cdrs_rated_total',
  'switchboard_rating_authorize_duration_seconds',
]);

function codeText(dir: string): string {
  let out = '';
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out += codeText(p);
    else if (name.endsWith('.ts') && !name.endsWith('.spec.ts')) out += readFileSync(p, 'utf8');
  }
  return out;
}

test('every metric the dashboard and the alerts use is exported by the code (or listed as planned)', () => {
  const code = codeText(join(root, 'services')) + codeText(join(root, 'libs'));
  const dashboard = JSON.parse(
    readFileSync(join(root, 'deploy/grafana/dashboards/switchboard.json'), 'utf8'),
  ) as {
    panels: { title: string; targets: { expr: string }[] }[];
  };
  const exprs = [
    ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)),
    readFileSync(join(root, 'deploy/alerts.yml'), 'utf8'),
  ];
  const names = new Set(exprs.flatMap((e) => e.match(/switchboard_[a-z_]+/g) ?? []));
  assert.ok(names.size > 10);
  for (const n of names) {
    const base = n.replace(/_(bucket|sum|count)$/, '');
    assert.ok(code.includes(`'${base}'`) || PLANNED_METRICS.has(base), `${n} is not exported by any service`);
  }
});

test('Grafana is provisioned with the Prometheus datasource and the dashboard', () => {
  const g = compose.services.grafana;
  assert.ok(g.volumes!.some((v) => v.startsWith('./grafana/provisioning:')));
  assert.ok(g.volumes!.some((v) => v.startsWith('./grafana/dashboards:')));
  const ds = read('deploy/grafana/provisioning/datasources/prometheus.yml') as {
    datasources: { url: string }[];
  };
  assert.equal(ds.datasources[0].url, 'http://prometheus:9090');
});
