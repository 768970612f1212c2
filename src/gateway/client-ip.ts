// The client IP for rate limiting and audit. The socket peer is the client unless the
// peer is a configured trusted proxy; only then is X-Forwarded-For read, right to left,
// skipping trusted hops, so a client cannot choose its own IP by sending the header.

export function normaliseIp(ip: string): string {
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

export function clientIp(peer: string | undefined, forwardedFor: string | string[] | undefined, trusted: ReadonlySet<string>): string {
  const socketIp = normaliseIp(peer ?? 'unknown');
  if (!trusted.has(socketIp) || forwardedFor === undefined) return socketIp;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor)
    .split(',')
    .map((h) => normaliseIp(h.trim()))
    .filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!;
    if (!trusted.has(hop)) return hop;
  }
  return hops[0] ?? socketIp;
}
