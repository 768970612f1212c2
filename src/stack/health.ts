// Health checks shared by the supervisor (while it runs children) and `adclick status`
// (which only has the pid files and re-checks from outside).
import { connect } from 'node:net';

export type HealthCheck =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  /** Healthy on any 2xx answer (whose body contains `bodyIncludes`, when given). */
  | { readonly kind: 'http'; readonly url: string; readonly bodyIncludes?: string }
  /**
   * Healthy once a stdout/stderr line matches. The line cannot be re-checked from outside:
   * `status` uses `outside` instead when given (e.g. the Flink job's REST API), else "unknown".
   */
  | { readonly kind: 'line'; readonly pattern: string; readonly outside?: HealthCheck }
  /** Arbitrary probe, e.g. a Kafka metadata request; not serialisable either. */
  | {
    readonly kind: 'custom'; readonly describe: string; readonly probe: () => Promise<boolean>;
    /** What `status` checks from another process instead (the probe function cannot be stored). */
    readonly outside?: HealthCheck;
  };

export function describeHealth(h: HealthCheck | undefined): string {
  if (!h) return 'none (alive = healthy)';
  switch (h.kind) {
    case 'tcp': return `tcp ${h.host}:${h.port}`;
    case 'http': return `GET ${h.url}${h.bodyIncludes ? ` with ${h.bodyIncludes}` : ''}`;
    case 'line': return `line /${h.pattern}/${h.outside ? `, from outside ${describeHealth(h.outside)}` : ''}`;
    case 'custom': return h.describe;
  }
}

export function tcpProbe(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => { socket.destroy(); resolve(ok); };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export async function httpProbe(url: string, timeoutMs = 2000, bodyIncludes?: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const ok = res.status >= 200 && res.status < 300;
    if (ok && bodyIncludes !== undefined) return (await res.text()).includes(bodyIncludes);
    await res.body?.cancel();
    return ok;
  } catch {
    return false;
  }
}

/**
 * One probe. `lineSeen` is the supervisor's knowledge for `line` checks; from outside
 * (no output stream) a line check answers `undefined` = unknown.
 */
export async function probe(h: HealthCheck | undefined, lineSeen?: boolean): Promise<boolean | undefined> {
  if (!h) return true;
  switch (h.kind) {
    case 'tcp': return tcpProbe(h.host, h.port);
    case 'http': return httpProbe(h.url, undefined, h.bodyIncludes);
    case 'line': return lineSeen;
    case 'custom': return h.probe().catch(() => false);
  }
}

/** The part of a health check that can be written to disk and re-checked by `status`. */
export function serialisableHealth(h: HealthCheck | undefined): HealthCheck | undefined {
  if (!h) return undefined;
  if (h.kind === 'custom') return serialisableHealth(h.outside);
  // `status` has no output stream: a line check with an outside probe is stored as that probe.
  if (h.kind === 'line' && h.outside) return serialisableHealth(h.outside);
  return h;
}
