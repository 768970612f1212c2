// What both HTTP ports (gateway, query API) do to keep cheap requests cheap before any
// route runs: server timeouts, so a client trickling headers or a body cannot hold a
// connection open for good, and closing the connection when a request is refused before
// its body was read, so the server neither reads nor buffers the rest.
import type { IncomingMessage } from 'node:http';

export interface HttpTimeouts {
  /** Longest wait for a request's complete headers. */
  readonly headersTimeoutMs: number;
  /** Longest wait for a whole request, body included (the body timeout); then 408 and close. */
  readonly requestTimeoutMs: number;
}

export const DEFAULT_HTTP_TIMEOUTS: HttpTimeouts = Object.freeze({ headersTimeoutMs: 10_000, requestTimeoutMs: 30_000 });

/** Retry-After never tells a client to wait longer than this (a long debt is re-announced on the retry). */
export const MAX_RETRY_AFTER_SEC = 60;

/**
 * Fastify server options for the timeouts. Node checks them every
 * `connectionsCheckingInterval` (default 30 s, which would let a slow body live up to
 * 30 s past its timeout); here a second, or less for timeouts shorter than that.
 */
export function serverTimeouts(t: Partial<HttpTimeouts> = {}) {
  const requestTimeout = t.requestTimeoutMs ?? DEFAULT_HTTP_TIMEOUTS.requestTimeoutMs;
  const headersTimeout = Math.min(t.headersTimeoutMs ?? DEFAULT_HTTP_TIMEOUTS.headersTimeoutMs, requestTimeout);
  const connectionsCheckingInterval = Math.max(50, Math.min(1000, Math.floor(headersTimeout / 4)));
  return { requestTimeout, http: { headersTimeout, connectionsCheckingInterval } };
}

/** True when the request announced a body that has not been read (yet): refusing it should close the connection. */
export function hasUnreadBody(req: IncomingMessage): boolean {
  if (req.complete) return false;
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}
