// What both HTTP ports (gateway, query API) do to keep cheap requests cheap before any
// route runs: server timeouts, so a client trickling headers or a body cannot hold a
// connection open for good, and closing the connection when a request is refused before
// its body was read, so the server neither reads nor buffers the rest.
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { ERRORS, errorBody, type ErrorCode } from './errors.ts';

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

/**
 * Answers Node's HTTP parser gives before any route runs (a request that is not HTTP, headers
 * over Node's 16 KiB, a request or its headers past their timeout), in the one error shape
 * rather than fastify's default body. The connection is closed: its framing is unknown.
 */
export const CONNECTION_ERROR_CODES = ['BAD_REQUEST', 'REQUEST_TIMEOUT', 'HEADERS_TOO_LARGE'] as const satisfies readonly ErrorCode[];
export type ConnectionErrorCode = (typeof CONNECTION_ERROR_CODES)[number];

export function connectionErrorCode(err: { code?: string }): ConnectionErrorCode {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'REQUEST_TIMEOUT';
  if (err.code === 'HPE_HEADER_OVERFLOW') return 'HEADERS_TOO_LARGE';
  return 'BAD_REQUEST';
}

/** The raw HTTP/1.1 answer for a connection-level error: status, the error body, connection closed. */
export function connectionErrorResponse(code: ConnectionErrorCode): string {
  const spec = ERRORS[code];
  const body = JSON.stringify(errorBody(code));
  return `HTTP/1.1 ${spec.status} ${STATUS_CODES[spec.status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`
    + `X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n${body}`;
}

/**
 * A fastify `clientErrorHandler` (it runs with the fastify instance as `this`): the answer in
 * the error shape, a count per code (`onRefused`), the socket destroyed. A reset connection
 * or one already answered gets nothing.
 */
export function clientErrorHandler(onRefused: (code: ConnectionErrorCode) => void) {
  return function handleClientError(this: unknown, err: Error & { code?: string }, socket: Duplex): void {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const code = connectionErrorCode(err);
    onRefused(code);
    if (socket.writable) socket.write(connectionErrorResponse(code));
    socket.destroy();
  };
}
