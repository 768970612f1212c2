// The advertiser dashboard's static files (src/query/dashboard/ plus uPlot from
// node_modules), read once per process and served by the query API at `/` and
// `/assets/...`. No bundler: the browser loads the ES modules as they are.
//
// Caching: index.html names every asset under `/assets/<version>/`, where the version is a
// hash of all asset contents, so those URLs can be cached for a year (a new build is a new
// URL, and relative imports between modules resolve under the same version). The page
// itself is never cached, so it always names the current version. `/assets/<name>` without
// a version works too, revalidated by ETag every time.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../shared/errors.ts';

/**
 * Scripts and styles only from this origin, no inline code, API calls only to this
 * origin, and the page may not be framed (clickjacking) nor leak its URL as a referrer.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

export const IMMUTABLE_CACHE = 'public, max-age=31536000, immutable';
export const REVALIDATE_CACHE = 'no-cache';

export interface StaticFile {
  readonly body: Buffer;
  readonly contentType: string;
  /** Strong validator: a hash of the body. */
  readonly etag: string;
}

export interface DashboardFiles {
  /** Hash of every asset; part of the asset URLs the page names. */
  readonly version: string;
  readonly index: StaticFile;
  /** By file name, as requested under /assets/. */
  readonly assets: ReadonlyMap<string, StaticFile>;
}

const SOURCE_DIR = join(dirname(fileURLToPath(import.meta.url)), 'dashboard');

function hashOf(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('base64url').slice(0, 16);
}

function staticFile(body: Buffer, contentType: string): StaticFile {
  return { body, contentType, etag: `"${hashOf(body)}"` };
}

/** uPlot's browser build and stylesheet, from the installed package (never a CDN). */
function uplotFiles(): [string, Buffer][] {
  const require = createRequire(import.meta.url);
  const dist = join(dirname(require.resolve('uplot/package.json')), 'dist');
  return [
    ['uplot.min.js', readFileSync(join(dist, 'uPlot.iife.min.js'))],
    ['uplot.min.css', readFileSync(join(dist, 'uPlot.min.css'))],
  ];
}

export function loadDashboardFiles(sourceDir: string = SOURCE_DIR): DashboardFiles {
  const assets = new Map<string, StaticFile>();
  const own = readdirSync(sourceDir)
    .filter((name) => CONTENT_TYPES[extname(name)] !== undefined)
    .sort()
    .map((name): [string, Buffer] => [name, readFileSync(join(sourceDir, name))]);
  for (const [name, body] of [...own, ...uplotFiles()]) assets.set(name, staticFile(body, CONTENT_TYPES[extname(name)]!));
  const version = hashOf([...assets].map(([name, f]) => `${name}:${f.etag}`).join('\n'));
  const html = readFileSync(join(sourceDir, 'index.html'), 'utf8').replaceAll('{{version}}', version);
  return { version, index: staticFile(Buffer.from(html), 'text/html; charset=utf-8'), assets };
}

let loaded: DashboardFiles | undefined;

/** The files of this process, read on first use (at app start-up), never per request. */
export function dashboardFiles(): DashboardFiles {
  loaded ??= loadDashboardFiles();
  return loaded;
}

/** Whether an If-None-Match header names this ETag (a list, or `*`). */
export function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(',').some((t) => {
    const tag = t.trim().replace(/^W\//, '');
    return tag === '*' || tag === etag;
  });
}

type Handler = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

function send(request: FastifyRequest, reply: FastifyReply, file: StaticFile, cacheControl: string): FastifyReply {
  reply.header('cache-control', cacheControl).header('etag', file.etag);
  if (etagMatches(request.headers['if-none-match'], file.etag)) return reply.code(304).send();
  return reply.type(file.contentType).send(file.body);
}

/** Handlers for `/` and `/assets/:name` (+ `/assets/:version/:name`); unknown assets are a standard 404. */
export function dashboardHandlers(files: DashboardFiles = dashboardFiles()): { page: Handler; asset: Handler } {
  return {
    page: async (request, reply) => {
      reply
        .header('content-security-policy', DASHBOARD_CSP)
        .header('referrer-policy', 'no-referrer')
        .header('x-frame-options', 'DENY');
      // Revalidated on every load so it always names the current asset version.
      return send(request, reply, files.index, REVALIDATE_CACHE);
    },
    asset: async (request, reply) => {
      const { name, version } = request.params as { name?: string; version?: string };
      const file = name === undefined ? undefined : files.assets.get(name);
      if (!file) throw new AppError('NOT_FOUND');
      // An old version (a page loaded before a restart) still gets today's file, uncached.
      return send(request, reply, file, version === files.version ? IMMUTABLE_CACHE : REVALIDATE_CACHE);
    },
  };
}
