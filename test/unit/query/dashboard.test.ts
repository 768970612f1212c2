// The dashboard's HTTP surface on the query app: the page with a strict CSP, its assets
// with the right types and cache headers, 404s in the standard error shape, and the /v1
// routes untouched by it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { buildQueryApp } from '../../../src/query/app.ts';
import { DASHBOARD_CSP, dashboardFiles, dashboardHandlers, etagMatches, loadDashboardFiles } from '../../../src/query/dashboard.ts';
import { FakeRepository, testApiKey } from './fake-repository.ts';

const KEY = testApiKey('dashboard');

const SOURCE_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../../src/query/dashboard');

function setup() {
  const repo = new FakeRepository();
  repo.addKey(KEY, 7);
  const app = buildQueryApp({ repo, logger: pino({ level: 'silent' }), registry: new Registry() });
  return { app, repo };
}

function assertNotFound(res: { statusCode: number; headers: Record<string, unknown>; json(): unknown }) {
  assert.equal(res.statusCode, 404);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  assert.deepEqual(res.json(), { error: { code: 'NOT_FOUND', message: (res.json() as { error: { message: string } }).error.message } });
  assert.equal(typeof (res.json() as { error: { message: string } }).error.message, 'string');
}

/** Every src/href the page names. */
function assetUrls(html: string): string[] {
  return [...html.matchAll(/\b(?:src|href)="([^"]+)"/g)].map((m) => m[1]!).filter((u) => u.startsWith('/'));
}

test('/ serves the dashboard page as HTML with a strict Content-Security-Policy', async () => {
  const { app } = setup();
  const res = await app.inject('/');
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
  const csp = String(res.headers['content-security-policy']);
  assert.equal(csp, DASHBOARD_CSP);
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, /connect-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*|https?:/, 'no inline code, eval or foreign origins');
  assert.equal(res.headers['x-content-type-options'], 'nosniff');
  assert.equal(res.headers['referrer-policy'], 'no-referrer');
  assert.equal(res.headers['cache-control'], 'no-cache');
  assert.ok(res.headers.etag);

  const html = res.body;
  assert.match(html, /<title>AdClick dashboard<\/title>/);
  assert.doesNotMatch(html, /\{\{version\}\}/, 'the version placeholder is filled in');
  // What the CSP would block anyway must not be there: inline scripts, handlers, style attributes.
  for (const m of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)) {
    assert.match(m[1]!, /\bsrc="\/assets\//, `script without a local src: ${m[0].slice(0, 80)}`);
    assert.equal(m[2]!.trim(), '', 'no inline script body');
  }
  assert.doesNotMatch(html, /\son[a-z]+=/i, 'no inline event handlers');
  assert.doesNotMatch(html, /\sstyle=/i, 'no style attributes');
  assert.doesNotMatch(html, /<style\b/i, 'no style elements');
  assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//, 'nothing from another origin (no CDN)');
  const urls = assetUrls(html);
  assert.ok(urls.some((u) => /\/assets\/[\w-]+\/uplot\.min\.js$/.test(u)), 'uPlot from this server');
  assert.ok(urls.some((u) => /\/assets\/[\w-]+\/app\.js$/.test(u)));

  const again = await app.inject({ url: '/', headers: { 'if-none-match': String(res.headers.etag) } });
  assert.equal(again.statusCode, 304);
  assert.equal(again.body, '');
});

test('every asset the page names is served with its content type and a year-long immutable cache', async () => {
  const { app } = setup();
  const html = (await app.inject('/')).body;
  const urls = assetUrls(html).filter((u) => u.startsWith('/assets/'));
  assert.ok(urls.length >= 4, `scripts and styles: ${urls.join(', ')}`);
  for (const url of urls) {
    const res = await app.inject(url);
    assert.equal(res.statusCode, 200, url);
    const want = url.endsWith('.js') ? 'text/javascript; charset=utf-8' : 'text/css; charset=utf-8';
    assert.equal(res.headers['content-type'], want, url);
    assert.equal(res.headers['cache-control'], 'public, max-age=31536000, immutable', url);
    assert.equal(res.headers['x-content-type-options'], 'nosniff', url);
    assert.ok(res.body.length > 100, url);
  }
  // uPlot is the installed package's own build, byte for byte.
  const dist = join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist');
  const uplotUrl = urls.find((u) => u.endsWith('/uplot.min.js'))!;
  assert.equal((await app.inject(uplotUrl)).body, readFileSync(join(dist, 'uPlot.iife.min.js'), 'utf8'));
  assert.equal((await app.inject('/assets/uplot.min.css')).body, readFileSync(join(dist, 'uPlot.min.css'), 'utf8'));
});

test('relative module imports resolve to served assets under the same version', async () => {
  const { app } = setup();
  const appUrl = assetUrls((await app.inject('/')).body).find((u) => u.endsWith('/app.js'))!;
  const base = appUrl.slice(0, appUrl.lastIndexOf('/') + 1);
  const seen = new Set<string>();
  const queue = ['app.js'];
  while (queue.length) {
    const name = queue.pop()!;
    if (seen.has(name)) continue;
    seen.add(name);
    const res = await app.inject(base + name);
    assert.equal(res.statusCode, 200, `${base}${name}`);
    for (const m of res.body.matchAll(/\bfrom\s+'\.\/([\w-]+\.js)'/g)) queue.push(m[1]!);
  }
  assert.ok(seen.size >= 6, `module graph: ${[...seen].join(', ')}`);
});

test('unversioned and stale-version asset URLs work but are revalidated (ETag, 304)', async () => {
  const { app } = setup();
  const plain = await app.inject('/assets/app.js');
  assert.equal(plain.statusCode, 200);
  assert.equal(plain.headers['cache-control'], 'no-cache');
  const etag = String(plain.headers.etag);
  assert.match(etag, /^"[\w-]+"$/);
  const stale = await app.inject('/assets/0123456789abcdef/app.js');
  assert.equal(stale.statusCode, 200);
  assert.equal(stale.headers['cache-control'], 'no-cache');
  assert.equal(stale.body, plain.body);
  const notModified = await app.inject({ url: '/assets/app.js', headers: { 'if-none-match': `W/"other", ${etag}` } });
  assert.equal(notModified.statusCode, 304);
  const changed = await app.inject({ url: '/assets/app.js', headers: { 'if-none-match': '"other"' } });
  assert.equal(changed.statusCode, 200);
});

test('unknown assets and path tricks answer the standard 404 body', async () => {
  const { app } = setup();
  const version = dashboardFiles().version;
  for (const url of [
    '/assets/nope.js',
    `/assets/${version}/nope.js`,
    '/assets/index.html',
    '/assets/..%2Fdashboard.ts',
    `/assets/${version}/..%2F..%2Fapp.ts`,
    '/assets/%2E%2E%2F%2E%2E%2Fpackage.json',
    '/assets/a/b/c.js',
  ]) {
    const res = await app.inject(url);
    assertNotFound(res);
  }
  const post = await app.inject({ method: 'POST', url: '/assets/app.js', payload: {} });
  assert.equal(post.statusCode, 405);
  assert.equal(post.headers.allow, 'GET, HEAD');
  const head = await app.inject({ method: 'HEAD', url: '/assets/app.js' });
  assert.equal(head.statusCode, 200);
});

test('the /v1 API keeps its behaviour: no CSP, never cached, 401 without a key', async () => {
  const { app } = setup();
  const res = await app.inject('/v1/campaigns');
  assert.equal(res.statusCode, 401);
  assert.equal(res.headers['cache-control'], 'no-store');
  assert.equal(res.headers['content-security-policy'], undefined);
  const ok = await app.inject({ url: '/v1/campaigns', headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(ok.statusCode, 200);
  assert.deepEqual(ok.json(), { campaigns: [] });
  assert.equal(ok.headers['cache-control'], 'no-store');
});

test('files are read once: later changes on disk do not change what is served', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'adclick-dashboard-'));
  try {
    cpSync(SOURCE_DIR, dir, { recursive: true });
    const files = loadDashboardFiles(dir);
    const app = Fastify();
    const h = dashboardHandlers(files);
    app.get('/', h.page);
    app.get('/assets/:name', h.asset);
    const before = (await app.inject('/assets/app.js')).body;
    writeFileSync(join(dir, 'app.js'), '// changed on disk\n');
    writeFileSync(join(dir, 'index.html'), 'changed');
    assert.equal((await app.inject('/assets/app.js')).body, before);
    assert.match((await app.inject('/')).body, /AdClick dashboard/);
    // A fresh load sees the change and gets a new version (so new asset URLs).
    const reloaded = loadDashboardFiles(dir);
    assert.notEqual(reloaded.version, files.version);
    assert.equal(dashboardFiles(), dashboardFiles(), 'the process-wide copy is loaded once');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('etagMatches: lists, weak tags and *', () => {
  assert.equal(etagMatches(undefined, '"a"'), false);
  assert.equal(etagMatches('"a"', '"a"'), true);
  assert.equal(etagMatches('"b", W/"a"', '"a"'), true);
  assert.equal(etagMatches('*', '"a"'), true);
  assert.equal(etagMatches('"b"', '"a"'), false);
});
