import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SETTINGS, loadConfig, parseSigningKeys, configToEnv } from '../../../src/shared/config.ts';

const root = new URL('../../../', import.meta.url).pathname;

test('README configuration table lists exactly the settings of config.ts, with their defaults', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const section = readme.split('## Configuration')[1]!.split('\n## ')[0]!;
  const rows = new Map([...section.matchAll(/^\| `([A-Z_0-9]+)` \| (.*?) \|/gm)].map((m) => [m[1]!, m[2]!]));
  const envs = Object.values(SETTINGS).map((s) => s.env);
  assert.deepEqual([...rows.keys()].sort(), [...envs].sort());
  for (const s of Object.values(SETTINGS)) {
    const shown = s.shownDefault ?? (Array.isArray(s.default) ? (s.default.length ? s.default.join(',') : '(none)') : s.default === '' ? '(empty)' : String(s.default));
    assert.ok(rows.get(s.env)!.includes(shown.replace(/^`|`$/g, '')), `${s.env}: README shows ${rows.get(s.env)}, config default ${shown}`);
  }
});

// Passing the environment on to children and OS conventions (PATH, NO_COLOR) are fine;
// reading an AdClick setting anywhere but config.ts is not.
test('only config.ts reads AdClick settings from process.env', () => {
  const offenders: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) { if (name !== 'gen') walk(p); continue; }
      if (!p.endsWith('.ts') || p.endsWith('shared/config.ts')) continue;
      if (/process\.env(\.|\[['"])(ADCLICK_|KAFKA_|REDIS_|CLICKHOUSE_|LOG_LEVEL)/.test(readFileSync(p, 'utf8'))) offenders.push(p.slice(root.length));
    }
  };
  walk(join(root, 'src'));
  assert.deepEqual(offenders, []);
});

test('loadConfig: defaults, parsing, and every bad key named at once', () => {
  const c = loadConfig({});
  assert.equal(c.gatewayPort, 8080);
  assert.equal(c.maxClickAgeMs, 86_400_000);
  assert.ok(Object.isFrozen(c));
  assert.equal(loadConfig({ ADCLICK_GATEWAY_PORT: '9000', ADCLICK_TRUSTED_PROXIES: '10.0.0.1, 10.0.0.2' }).trustedProxies.length, 2);
  assert.throws(() => loadConfig({ ADCLICK_GATEWAY_PORT: 'x', ADCLICK_RATE_LIMIT_PER_SEC: '0' }), (err: Error) =>
    err.message.includes('ADCLICK_GATEWAY_PORT') && err.message.includes('ADCLICK_RATE_LIMIT_PER_SEC'));
  const round = loadConfig(configToEnv(loadConfig({ ADCLICK_QUERY_PORT: '9999', ADCLICK_TRUSTED_PROXIES: '10.0.0.0/8,loopback' })));
  assert.equal(round.queryPort, 9999);
  assert.deepEqual(round.trustedProxies, ['10.0.0.0/8', 'loopback']);
  assert.throws(() => loadConfig({ ADCLICK_TRUSTED_PROXIES: '10.0.0.1, proxy.example' }), /ADCLICK_TRUSTED_PROXIES: "proxy.example" is not an IP address/);
});

test('gateway workers: a count, or auto = one per CPU', () => {
  assert.equal(loadConfig({}).gatewayWorkers, 1);
  assert.equal(loadConfig({ ADCLICK_GATEWAY_WORKERS: '3' }).gatewayWorkers, 3);
  assert.equal(loadConfig({ ADCLICK_GATEWAY_WORKERS: 'AUTO' }).gatewayWorkers, Math.min(64, availableParallelism()));
  assert.throws(() => loadConfig({ ADCLICK_GATEWAY_WORKERS: '0' }), /ADCLICK_GATEWAY_WORKERS must be between 1 and 64/);
  assert.throws(() => loadConfig({ ADCLICK_GATEWAY_WORKERS: 'many' }), /ADCLICK_GATEWAY_WORKERS must be an integer/);
});

test('signing keys: pairs, rotation, errors', () => {
  const s = 's'.repeat(32);
  assert.deepEqual([...parseSigningKeys(`k1:${s}, k2:${s}:2`)], [['k1', s], ['k2', `${s}:2`]]);
  assert.throws(() => parseSigningKeys('k1'), /key_id:secret/);
  assert.throws(() => parseSigningKeys('k1:'), /key_id:secret/);
  assert.throws(() => parseSigningKeys(`k1:${s},k1:${s}`), /twice/);
});

test('dedup horizons must nest: Redis TTL covers max click age + skew', async () => {
  const { loadConfig: load, dedupHorizonProblem } = await import('../../../src/shared/config.ts');
  assert.equal(dedupHorizonProblem(load({})), null, 'defaults nest');
  assert.throws(() => load({ ADCLICK_EDGE_DEDUP_TTL_SEC: '3600' }), /ADCLICK_EDGE_DEDUP_TTL_SEC \(3600 s\) must be at least/);
  assert.throws(() => load({ ADCLICK_MAX_CLICK_AGE_MS: String(30 * 86_400_000), ADCLICK_EDGE_DEDUP_TTL_SEC: String(31 * 86_400) }), /clicks topic retention/);
  assert.doesNotThrow(() => load({ ADCLICK_MAX_CLICK_AGE_MS: String(3_600_000), ADCLICK_EDGE_DEDUP_TTL_SEC: '3900' }));
});
