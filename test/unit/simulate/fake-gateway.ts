// Just enough of the gateway contract (API.md) to test the simulator's client: signature
// check, idempotent accept/duplicate, and injected faults (503 + Retry-After, dropped
// connections before or after the click was accepted, per-item batch rejections).
// Not a gateway: no Kafka, no validation beyond what the tests need.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifySignature } from '../../../src/shared/signature.ts';
import { createRng } from '../../../src/simulate/prng.ts';

export interface FakeGatewayOptions {
  keys?: Record<string, string>;
  seed?: number;
  /** Whole request answered 503 UNAVAILABLE with Retry-After. */
  unavailable?: number;
  retryAfter?: string; // default "0"
  /** Connection destroyed before anything was accepted. */
  dropBefore?: number;
  /** Click(s) accepted, then the connection destroyed before the answer. */
  dropAfter?: number;
  /** Batch item answered `rejected` UNAVAILABLE. */
  itemUnavailable?: number;
  /** Clicks answered 400 INVALID_FIELD (non-retryable). */
  rejectIf?: (click: Record<string, unknown>) => boolean;
  /** Delay before answering, ms. */
  delayMs?: number;
}

export interface FakeGateway {
  url: string;
  /** impression_id → body of the accepted click */
  accepted: Map<string, string>;
  /** impression_id → every distinct body seen for it */
  bodies: Map<string, Set<string>>;
  /** impression_id → how many times it was received */
  sends: Map<string, number>;
  requests: number;
  close(): Promise<void>;
}

export async function startFakeGateway(o: FakeGatewayOptions = {}): Promise<FakeGateway> {
  const keys = o.keys ?? { test: 'test-secret' };
  const rng = createRng(o.seed ?? 7);
  const state = { accepted: new Map<string, string>(), bodies: new Map<string, Set<string>>(), sends: new Map<string, number>(), requests: 0 };

  const note = (c: Record<string, unknown>, raw: string): void => {
    const id = String(c.impression_id);
    state.sends.set(id, (state.sends.get(id) ?? 0) + 1);
    let s = state.bodies.get(id);
    if (!s) state.bodies.set(id, (s = new Set()));
    s.add(raw);
  };

  /** Answer for one click: [status, body]. Accepting is the only side effect. */
  const handleClick = (c: Record<string, unknown>): { status: string; code?: string } => {
    const secret = keys[String(c.key_id)];
    if (secret === undefined) return { status: 'rejected', code: 'UNKNOWN_KEY' };
    const ok = verifySignature(
      {
        key_id: String(c.key_id), event_type: String(c.event_type), impression_id: String(c.impression_id),
        ad_id: Number(c.ad_id), campaign_id: Number(c.campaign_id), advertiser_id: Number(c.advertiser_id),
        user_id: String(c.user_id), timestamp: Number(c.timestamp),
      },
      String(c.signature),
      secret,
    );
    if (!ok) return { status: 'rejected', code: 'SIGNATURE_INVALID' };
    if (o.rejectIf?.(c)) return { status: 'rejected', code: 'INVALID_FIELD' };
    const id = String(c.impression_id);
    if (state.accepted.has(id)) return { status: 'duplicate' };
    state.accepted.set(id, JSON.stringify(c));
    return { status: 'accepted' };
  };

  const STATUS: Record<string, number> = { UNKNOWN_KEY: 401, SIGNATURE_INVALID: 401, INVALID_FIELD: 400 };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      state.requests++;
      const raw = Buffer.concat(chunks).toString('utf8');
      const answer = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
        const send = (): void => {
          res.writeHead(status, { 'content-type': 'application/json', ...headers });
          res.end(JSON.stringify(body));
        };
        if (o.delayMs) setTimeout(send, o.delayMs);
        else send();
      };
      if (rng.chance(o.dropBefore ?? 0)) {
        req.socket.destroy();
        return;
      }
      if (rng.chance(o.unavailable ?? 0)) {
        answer(503, { error: { code: 'UNAVAILABLE', message: 'down' } }, { 'retry-after': o.retryAfter ?? '0' });
        return;
      }
      const dropAfter = rng.chance(o.dropAfter ?? 0);
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch {
        answer(400, { error: { code: 'INVALID_JSON', message: 'bad json' } });
        return;
      }
      if (req.url === '/v1/clicks') {
        const c = parsed as Record<string, unknown>;
        note(c, raw);
        const r = handleClick(c);
        if (dropAfter) {
          req.socket.destroy();
          return;
        }
        if (r.status === 'rejected') answer(STATUS[r.code!] ?? 400, { error: { code: r.code, message: 'no' } });
        else answer(202, { status: r.status });
      } else if (req.url === '/v1/clicks/batch') {
        const clicks = (parsed as { clicks: Record<string, unknown>[] }).clicks;
        const results = clicks.map((c) => {
          note(c, JSON.stringify(c));
          if (rng.chance(o.itemUnavailable ?? 0)) return { impression_id: c.impression_id, status: 'rejected', error: { code: 'UNAVAILABLE', message: 'down' } };
          const r = handleClick(c);
          return r.status === 'rejected'
            ? { impression_id: c.impression_id, status: 'rejected', error: { code: r.code, message: 'no' } }
            : { impression_id: c.impression_id, status: r.status };
        });
        if (dropAfter) {
          req.socket.destroy();
          return;
        }
        answer(200, { results });
      } else {
        answer(404, { error: { code: 'NOT_FOUND', message: 'no' } });
      }
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    get accepted() {
      return state.accepted;
    },
    get bodies() {
      return state.bodies;
    },
    get sends() {
      return state.sends;
    },
    get requests() {
      return state.requests;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((res) => server.close(() => res()));
    },
  };
}
