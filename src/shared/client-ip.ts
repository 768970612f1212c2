// The client address behind a request, for per-client rate limits and audit, on both
// HTTP ports. The socket peer is the client unless it is a trusted proxy; only then is
// X-Forwarded-For read, right to left through trusted hops (proxy-addr, the walk fastify's
// own trustProxy does), so a client cannot choose its address by sending the header.
//
// Rate-limit buckets must not be cheap to multiply: one textual address has many
// spellings (ports, case, zero runs, IPv4-mapped IPv6), and one IPv6 subscriber is given a
// whole /64 (or more), so every address is validated and canonicalised, and IPv6 is
// bucketed by its prefix.
import proxyaddr from '@fastify/proxy-addr';
import ipaddr from 'ipaddr.js';
import { isIP } from 'node:net';

export interface ClientAddress {
  /** The canonical address (audit, logs). */
  readonly ip: string;
  /** The rate-limit bucket: the IPv4 address, or the IPv6 prefix in CIDR form. */
  readonly bucket: string;
}

export interface ClientAddressOptions {
  /** Addresses, CIDR ranges, or proxy-addr's names (`loopback`, `linklocal`, `uniquelocal`). */
  readonly trustedProxies: readonly string[];
  /** IPv6 prefix length one bucket spans (64: one subscriber's LAN; 128: every address alone). */
  readonly ipv6Prefix: number;
}

/** A peer the socket no longer knows (closed before we asked). */
const UNKNOWN: ClientAddress = Object.freeze({ ip: 'unknown', bucket: 'unknown' });

/**
 * One address in canonical form, or null when it is not an address: brackets, a port and
 * an IPv6 zone are dropped, IPv6 is lower-case and compressed, IPv4-mapped IPv6 becomes
 * IPv4. Only the dotted-quad IPv4 form counts (`127.1` and hex forms do not).
 */
export function canonicalIp(raw: string): string | null {
  let s = raw.trim();
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0) return null;
    s = s.slice(1, end);
  } else if (s.indexOf(':') > 0 && s.indexOf(':') === s.lastIndexOf(':') && s.includes('.')) {
    s = s.slice(0, s.indexOf(':')); // IPv4 with a port
  }
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  if (s.length > 45 || isIP(s) === 0) return null;
  return ipaddr.process(s).toString();
}

/** The rate-limit bucket of a canonical address. */
export function bucketOf(ip: string, ipv6Prefix: number): string {
  if (!ip.includes(':') || ipv6Prefix >= 128) return ip;
  const parts = ipaddr.IPv6.parse(ip).parts.slice();
  for (let i = 0; i < 8; i++) {
    const keep = Math.max(0, Math.min(16, ipv6Prefix - i * 16));
    parts[i] = keep === 0 ? 0 : parts[i]! & (0xffff << (16 - keep)) & 0xffff;
  }
  return `${new ipaddr.IPv6(parts).toString()}/${ipv6Prefix}`;
}

/** Throws naming the first entry proxy-addr cannot read (configuration is checked at start-up). */
export function compileTrust(trustedProxies: readonly string[]): (addr: string, i: number) => boolean {
  return proxyaddr.compile([...trustedProxies]);
}

export function createClientAddress(o: ClientAddressOptions): (req: { socket: { remoteAddress?: string }; headers: Record<string, string | string[] | undefined> }) => ClientAddress {
  const trust = o.trustedProxies.length ? compileTrust(o.trustedProxies) : null;
  const of = (ip: string): ClientAddress => ({ ip, bucket: bucketOf(ip, o.ipv6Prefix) });
  return (req) => {
    const peer = req.socket.remoteAddress;
    if (peer === undefined) return UNKNOWN;
    if (!trust || req.headers['x-forwarded-for'] === undefined) {
      const ip = canonicalIp(peer);
      return ip === null ? UNKNOWN : of(ip);
    }
    // The socket first, then forwarded hops right to left, cut after the first untrusted one.
    const hops = proxyaddr.all(req as never, trust);
    // A hop that is not an address (garbage, or an obfuscated name) cannot be a bucket:
    // the nearest trusted proxy that vouched for it stands in.
    for (let i = hops.length - 1; i >= 0; i--) {
      const ip = canonicalIp(hops[i]!);
      if (ip !== null) return of(ip);
    }
    return UNKNOWN;
  };
}

/**
 * The coarser bucket an IPv6 client bucket also pays into: its prefix of `prefix` bits (a
 * /48, one site), so a holder of a /48 rotating over its 65,536 /64s meets one limit. Null
 * for IPv4, when off (0) or when the bucket is already that coarse. Cached (bounded).
 */
export function createAggregateOf(prefix: number): (bucket: string) => string | null {
  const cache = new Map<string, string | null>();
  return (bucket) => {
    if (prefix <= 0 || !bucket.includes(':')) return null;
    let a = cache.get(bucket);
    if (a !== undefined) return a;
    const slash = bucket.indexOf('/');
    const own = slash < 0 ? 128 : Number(bucket.slice(slash + 1));
    a = own <= prefix ? null : bucketOf(slash < 0 ? bucket : bucket.slice(0, slash), prefix);
    if (cache.size >= 10_000) cache.clear();
    cache.set(bucket, a);
    return a;
  };
}
