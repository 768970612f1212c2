// Issue 16, "forwarded-for forms" in the fuzzers: whatever a client or proxy writes into
// X-Forwarded-For, the address function never throws, only ever yields a canonical address
// (or the trusted proxy that vouched for garbage), and every spelling of one address (port,
// brackets, zone, case, zero runs, IPv4-mapped IPv6) lands in the same bucket — the ways a
// rotating client could otherwise mint new buckets. IPv6 buckets are their /64, and the
// /48 aggregate of a bucket contains it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import fc from 'fast-check';
import { bucketOf, canonicalIp, createAggregateOf, createClientAddress } from '../../../src/shared/client-ip.ts';

const PROXY = '10.1.2.3';
const address = createClientAddress({ trustedProxies: ['10.0.0.0/8'], ipv6Prefix: 64 });
const via = (xff: string | undefined, peer = PROXY) => address({ socket: { remoteAddress: peer }, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } });

const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join('.'));
const v6 = fc.ipV6();
const hop = fc.oneof(
  v4, v6,
  v4.chain((a) => fc.constantFrom(`${a}:8080`, ` ${a} `, `::ffff:${a}`, `[::ffff:${a}]:443`)),
  v6.chain((a) => fc.constantFrom(`[${a}]`, `[${a}]:1234`, a.toUpperCase(), `${a}%eth0`)),
  fc.string({ maxLength: 40 }),
  fc.constantFrom('unknown', '', '_hidden', '1.2.3', '127.1', '0x7f.0.0.1', '::ffff:', '[::1', 'fe80::1%', '999.1.1.1'),
);

test('fuzz: arbitrary X-Forwarded-For from a trusted proxy never throws and yields a canonical address', () => {
  fc.assert(
    fc.property(fc.array(hop, { maxLength: 6 }), fc.constantFrom(', ', ',', ' ,  '), (hops, sep) => {
      const a = via(hops.join(sep));
      assert.ok(a.ip === 'unknown' || isIP(a.ip) !== 0, `ip ${a.ip}`);
      assert.equal(canonicalIp(a.ip) ?? 'unknown', a.ip, 'canonical');
      assert.equal(a.bucket, a.ip === 'unknown' ? 'unknown' : bucketOf(a.ip, 64));
    }),
    { numRuns: 500 },
  );
});

test('fuzz: every spelling of one IPv4 address is one bucket, forwarded or not', () => {
  fc.assert(
    fc.property(v4, (ip) => {
      const spellings = [ip, `${ip}:1`, `::ffff:${ip}`, `[::ffff:${ip}]:80`, `  ${ip}`, `::FFFF:${ip}`];
      const buckets = new Set(spellings.map((s) => via(s).bucket));
      assert.deepEqual([...buckets], [ip], spellings.join(' | '));
      assert.equal(address({ socket: { remoteAddress: `::ffff:${ip}` }, headers: {} }).bucket, ip, 'mapped socket peer');
    }),
    { numRuns: 300 },
  );
});

test('fuzz: every spelling of one IPv6 address, and every address of its /64, is one bucket inside its /48 aggregate', () => {
  const aggregateOf = createAggregateOf(48);
  fc.assert(
    fc.property(v6, fc.integer({ min: 0, max: 0xffff }), (ip, low) => {
      const canon = canonicalIp(ip)!;
      if (canon.includes('.')) return; // a mapped IPv4 address: the IPv4 property
      const spellings = [ip, ip.toUpperCase(), `[${ip}]`, `[${ip}]:443`, `${ip}%eth0`];
      const buckets = new Set(spellings.map((s) => via(s).bucket));
      assert.equal(buckets.size, 1, spellings.join(' | '));
      const bucket = [...buckets][0]!;
      assert.match(bucket, /\/64$/);
      const parts = canon.includes('::') ? null : canon.split(':');
      if (parts) {
        parts[7] = low.toString(16);
        assert.equal(via(parts.join(':')).bucket, bucket, 'a neighbour in the same /64');
      }
      const agg = aggregateOf(bucket);
      assert.ok(agg !== null && agg.endsWith('/48'));
      assert.equal(bucketOf(bucket.slice(0, -3), 48), agg, 'the aggregate contains the bucket');
    }),
    { numRuns: 300 },
  );
});

test('fuzz: an untrusted peer cannot choose its bucket with X-Forwarded-For', () => {
  fc.assert(
    fc.property(v4, fc.array(hop, { maxLength: 4 }), (peer, hops) => {
      if (peer.startsWith('10.')) return;
      assert.equal(via(hops.join(', '), peer).bucket, peer);
    }),
    { numRuns: 300 },
  );
});
