// Node/V8 flags the serving process is started with, by `npm start` (stack/up.ts) and by
// the cluster form (cluster/balancer.ts).

/**
 * V8 flags of the serving process. A young generation of 64 MiB (semi-space; Node 20's
 * default is 16): a sink batch's records and rows live a few hundred ms, long enough to
 * survive two scavenges of a small young generation and be promoted, so they ended in
 * mark-compact collections. Measured at 10,000 clicks/s: garbage collection 30.6% → 19.9%
 * of the main thread's busy time (docs/capacity.md, issue 17).
 */
export const SERVING_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=64'];
