// A costly answer shared by everyone who asks within `ttlMs`: /readyz (a storage round
// trip) and the gateway's /metrics (a fan-out to every worker) are cheap to ask for and
// were each computed per request, so a flood of them cost a storage query or a
// cross-process collection apiece (issue #16). Concurrent callers share the one in
// flight; a failure is shared by those waiting for it but not kept.
export function cachedAnswer<T>(compute: () => Promise<T>, ttlMs: number, now: () => number = Date.now): () => Promise<T> {
  let inFlight: Promise<T> | null = null;
  let kept: { value: T; at: number } | null = null;
  return () => {
    if (kept && now() - kept.at < ttlMs) return Promise.resolve(kept.value);
    if (inFlight) return inFlight;
    const p = compute().then(
      (value) => {
        kept = { value, at: now() };
        return value;
      },
    ).finally(() => {
      inFlight = null;
    });
    inFlight = p;
    return p;
  };
}
