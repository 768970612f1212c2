import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ClickClient, parseRetryAfter, type OutgoingClick } from '../../../src/simulate/click-client.ts';
import { signedBody } from '../../../src/simulate/simulator.ts';
import type { ClickPayload } from '../../../src/simulate/traffic-model.ts';
import { startFakeGateway, type FakeGateway } from './fake-gateway.ts';

const KEY = { keyId: 'test', secret: 'test-secret' };
let seq = 0;
function click(over: Partial<ClickPayload> = {}): OutgoingClick {
  const c: ClickPayload = {
    impression_id: `imp_cc_${++seq}_${Date.now()}`, event_type: 'click', ad_id: 1, campaign_id: 2, advertiser_id: 3,
    user_id: 'u_1', timestamp: Date.now(), ...over,
  };
  return { click: c, body: signedBody(c, KEY.keyId, KEY.secret) };
}

const servers: FakeGateway[] = [];
async function gateway(o: Parameters<typeof startFakeGateway>[0] = {}): Promise<FakeGateway> {
  const g = await startFakeGateway(o);
  servers.push(g);
  return g;
}
after(async () => {
  for (const g of servers) await g.close();
});

describe('click client', () => {
  it('retries 503s and dropped connections with the identical body and resolves every click', async () => {
    const g = await gateway({ unavailable: 0.25, dropBefore: 0.1, dropAfter: 0.1, seed: 11 });
    const client = new ClickClient({ url: g.url, concurrency: 8, maxAttempts: 30, backoffBaseMs: 1, backoffMaxMs: 5 });
    const items = Array.from({ length: 300 }, () => click());
    const outs = await Promise.all(items.map((c) => client.send(c)));
    client.close();
    assert.ok(outs.every((o) => o.status === 'accepted' || o.status === 'duplicate'), JSON.stringify(outs.filter((o) => o.status !== 'accepted' && o.status !== 'duplicate')));
    assert.ok(client.counters.retries > 50, `retries ${client.counters.retries}`);
    assert.ok(outs.some((o) => o.status === 'duplicate'), 'a retry after an accepted-then-dropped send answers duplicate');
    assert.ok((client.counters.retryableByCode.UNAVAILABLE ?? 0) > 0);
    assert.ok(client.counters.errors > 0);
    for (const c of items) {
      const bodies = g.bodies.get(c.click.impression_id);
      // Every send the server received (dropped-before ones never reach it) was byte-identical.
      if (bodies) assert.deepEqual([...bodies], [c.body]);
    }
    assert.equal(g.accepted.size, 300);
  });

  it('does not retry a non-retryable 4xx and counts it by code', async () => {
    const g = await gateway({ rejectIf: (c) => c.ad_id === 666 });
    const client = new ClickClient({ url: g.url, maxAttempts: 5, backoffBaseMs: 1 });
    const bad = click({ ad_id: 666 });
    const forged: OutgoingClick = { click: click().click, body: signedBody(click().click, 'test', 'wrong') };
    const [o1, o2] = [await client.send(bad), await client.send(forged)];
    client.close();
    assert.deepEqual(o1, { status: 'rejected', code: 'INVALID_FIELD', attempts: 1 });
    assert.equal(o2.status, 'rejected');
    assert.equal(o2.code, 'SIGNATURE_INVALID');
    assert.equal(g.sends.get(bad.click.impression_id), 1);
    assert.deepEqual(client.counters.rejectedByCode, { INVALID_FIELD: 1, SIGNATURE_INVALID: 1 });
    assert.equal(client.counters.retries, 0);
  });

  it('honours Retry-After', async () => {
    const g = await gateway({ unavailable: 1, retryAfter: '1' });
    const client = new ClickClient({ url: g.url, maxAttempts: 2, backoffBaseMs: 1 });
    const t0 = performance.now();
    const o = await client.send(click());
    const took = performance.now() - t0;
    client.close();
    assert.equal(o.status, 'failed', '503 twice: given up, definitely not accepted');
    assert.equal(o.attempts, 2);
    assert.ok(took >= 990, `waited ${took} ms for Retry-After: 1`);
  });

  it('gives up after maxAttempts: unknown when an answer was lost, failed when refused', async () => {
    const g = await gateway({ dropAfter: 1 });
    const client = new ClickClient({ url: g.url, maxAttempts: 3, backoffBaseMs: 1, backoffMaxMs: 2 });
    const c = click();
    const o = await client.send(c);
    assert.equal(o.status, 'unknown');
    assert.equal(o.attempts, 3);
    assert.equal(g.sends.get(c.click.impression_id), 3);
    assert.ok(g.accepted.has(c.click.impression_id), 'it really was accepted: the ledger cannot know');
    client.close();

    const refused = new ClickClient({ url: 'http://127.0.0.1:9', maxAttempts: 2, backoffBaseMs: 1 });
    const r = await refused.send(click());
    refused.close();
    assert.equal(r.status, 'failed');
    assert.equal(r.code, 'ECONNREFUSED');
  });

  it('times out a request that gets no answer', async () => {
    const g = await gateway({ delayMs: 400 });
    const client = new ClickClient({ url: g.url, maxAttempts: 1, requestTimeoutMs: 100 });
    const o = await client.send(click());
    client.close();
    assert.equal(o.status, 'unknown');
    assert.equal(o.code, 'TIMEOUT');
  });

  it('bounds concurrency', async () => {
    const g = await gateway({ delayMs: 30 });
    const client = new ClickClient({ url: g.url, concurrency: 4 });
    let peak = 0;
    const poll = setInterval(() => (peak = Math.max(peak, client.inFlight)), 2);
    await Promise.all(Array.from({ length: 40 }, () => client.send(click())));
    clearInterval(poll);
    client.close();
    assert.ok(peak <= 4 && peak >= 2, `peak in flight ${peak}`);
  });

  it('batches: retries only the retryable items, with the same item bodies', async () => {
    const g = await gateway({ itemUnavailable: 0.3, unavailable: 0.2, dropAfter: 0.1, seed: 5 });
    const client = new ClickClient({ url: g.url, maxAttempts: 40, backoffBaseMs: 1, backoffMaxMs: 3 });
    const items = Array.from({ length: 200 }, (_, i) => click(i === 7 ? { ad_id: 666 } : {}));
    const g2rej = items[7]!.click.impression_id;
    const outs = (await Promise.all([0, 50, 100, 150].map((s) => client.sendBatch(items.slice(s, s + 50))))).flat();
    client.close();
    assert.equal(outs.length, 200);
    outs.forEach((o, i) => {
      if (i === 7) assert.equal(o.status, 'accepted', 'ad 666 is fine here (no rejectIf)');
      else assert.ok(o.status === 'accepted' || o.status === 'duplicate', `${i}: ${JSON.stringify(o)}`);
    });
    assert.ok(g.accepted.has(g2rej));
    assert.equal(g.accepted.size, 200);
    assert.ok(client.counters.retries > 0);
    for (const c of items) assert.deepEqual([...g.bodies.get(c.click.impression_id)!], [JSON.stringify(JSON.parse(c.body))]);
  });

  it('batches: a non-retryable item is rejected, the rest accepted', async () => {
    const g = await gateway({ rejectIf: (c) => c.ad_id === 666 });
    const client = new ClickClient({ url: g.url });
    const items = [click(), click({ ad_id: 666 }), click()];
    const outs = await client.sendBatch(items);
    client.close();
    assert.deepEqual(outs.map((o) => o.status), ['accepted', 'rejected', 'accepted']);
    assert.equal(outs[1]!.code, 'INVALID_FIELD');
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    assert.equal(parseRetryAfter('2'), 2000);
    assert.equal(parseRetryAfter('0'), 0);
    assert.equal(parseRetryAfter(undefined), null);
    assert.equal(parseRetryAfter('soon'), null);
    assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 7_000), 3000);
  });
});
