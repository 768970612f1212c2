// The balancer's configuration: what it says (health checks on /readyz, retries on a dead
// server) and that Debian's HAProxy accepts it (`haproxy -c`, no listening).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { HAPROXY_BINARY, haproxyConfig } from '../../../src/cluster/haproxy.ts';

const tiers = [
  { name: 'gateway', bindAddress: '10.231.7.14', port: 8080, healthPath: '/readyz', servers: [{ name: 'gw-1', address: '10.231.7.12', port: 8080 }, { name: 'gw-2', address: '10.231.7.13', port: 8080 }] },
  { name: 'query', bindAddress: '10.231.7.14', port: 8081, healthPath: '/readyz', servers: [{ name: 'q-1', address: '10.231.7.15', port: 8081 }, { name: 'q-2', address: '10.231.7.16', port: 8081 }] },
];

test('haproxyConfig: one frontend and backend per tier, every server health-checked on its readiness path', () => {
  const cfg = haproxyConfig({ tiers, statsSocket: '/tmp/x.sock', checkIntervalMs: 1000, fall: 2, rise: 3 });
  assert.match(cfg, /frontend gateway\n  bind 10\.231\.7\.14:8080\n  default_backend gateway/);
  assert.match(cfg, /backend query\n  balance roundrobin\n  option httpchk GET \/readyz\n  http-check expect status 200\n  server q-1 10\.231\.7\.15:8081 check\n  server q-2 10\.231\.7\.16:8081 check/);
  assert.match(cfg, /default-server inter 1000ms fastinter 500ms downinter 1000ms fall 2 rise 3/);
  assert.match(cfg, /retry-on conn-failure empty-response 503\n/);
  assert.match(cfg, /option forwardfor/);
  assert.match(cfg, /stats socket \/tmp\/x\.sock mode 600 level admin/);
});

test('haproxyConfig: bad names and empty tiers are refused', () => {
  assert.throws(() => haproxyConfig({ tiers: [], statsSocket: '/s' }), /no tier/);
  assert.throws(() => haproxyConfig({ tiers: [{ ...tiers[0]!, servers: [] }], statsSocket: '/s' }), /has no server/);
  assert.throws(() => haproxyConfig({ tiers: [{ ...tiers[0]!, name: 'gw 1' }], statsSocket: '/s' }), /tier name/);
  assert.throws(() => haproxyConfig({ tiers: [{ ...tiers[0]!, servers: [{ name: 'a;b', address: '10.0.0.1', port: 1 }] }], statsSocket: '/s' }), /server name/);
});

test('haproxyConfig: Debian\'s HAProxy accepts the configuration (haproxy -c)', { skip: !existsSync(HAPROXY_BINARY) && 'haproxy is not installed' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'adclick-haproxy-'));
  try {
    const file = join(dir, 'haproxy.cfg');
    writeFileSync(file, haproxyConfig({ tiers, statsSocket: join(dir, 'stats.sock') }));
    const out = execFileSync(HAPROXY_BINARY, ['-c', '-f', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    assert.match(out, /Configuration file is valid/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
