// The freshness probe shared by `bench:freshness` and `bench:pipeline`: one signed probe
// click per second to a probe ad of its own, the query API polled every 100 ms at 1m, 5m
// and 1h. A probe click i is visible once the ad's total reaches i+1, so each click's
// accepted → visible time is measured exactly, whatever else flows through the stack.
// Also: window end → its final count visible (the 1m point's `final` flag turns true).
// Bounded: sends for `seconds - tailSeconds`, polls until `seconds` have passed.
import { signClick } from '../src/shared/signature.ts';

export interface ProbeOptions {
  gatewayUrl: string;
  apiUrl: string;
  /** Query API key of `advertiserId`. */
  apiKey: string;
  keyId: string;
  secret: string;
  adId: number;
  campaignId: number;
  advertiserId: number;
  seconds: number;
  /** Stop sending this long before the end, so the last probes can become visible. Default 20. */
  tailSeconds?: number;
}

export interface ProbeResult {
  sent: number;
  accepted: number;
  /** accepted → visible, ms, per granularity. */
  visible: Map<string, number[]>;
  /** 1m window end → final visible, ms. */
  finals: number[];
}

export const pct = (xs: readonly number[], p: number): number =>
  xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]! : NaN;

export async function probeFreshness(o: ProbeOptions): Promise<ProbeResult> {
  const accepted: { t: number; ts: number }[] = [];
  const visible = new Map<string, number[]>([['1m', []], ['5m', []], ['1h', []]]);
  const seenCount: Record<string, number> = { '1m': 0, '5m': 0, '1h': 0 };
  const finals: number[] = [];
  const finalSeen = new Set<number>();
  const t0 = Date.now();
  let seq = 0;
  const sender = setInterval(async () => {
    if (Date.now() - t0 > (o.seconds - (o.tailSeconds ?? 20)) * 1000) return;
    const c = { impression_id: `imp_probe_${t0}_${++seq}`, event_type: 'click', ad_id: o.adId, campaign_id: o.campaignId, advertiser_id: o.advertiserId, user_id: 'probe', timestamp: Date.now(), key_id: o.keyId };
    const body = JSON.stringify({ ...c, signature: signClick(c, o.secret) });
    try {
      const res = await fetch(`${o.gatewayUrl}/v1/clicks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(10_000) });
      if (res.status === 202) accepted.push({ t: Date.now(), ts: c.timestamp });
      await res.arrayBuffer();
    } catch { /* not accepted: not a probe */ }
  }, 1000);

  try {
    const deadline = t0 + o.seconds * 1000;
    while (Date.now() < deadline) {
      const now = Date.now();
      for (const g of ['1m', '5m', '1h'] as const) {
        let body: { total_clicks: number; points: { window_start: string; clicks: number; final: boolean }[] };
        try {
          const res = await fetch(`${o.apiUrl}/v1/ads/${o.adId}/clicks?from=${t0 - 3_600_000}&to=${now + 60_000}&granularity=${g}`, { headers: { authorization: `Bearer ${o.apiKey}` }, signal: AbortSignal.timeout(5000) });
          if (res.status !== 200) {
            await res.arrayBuffer();
            continue;
          }
          body = (await res.json()) as typeof body;
        } catch {
          continue;
        }
        while (seenCount[g]! < body.total_clicks && seenCount[g]! < accepted.length) {
          visible.get(g)!.push(now - accepted[seenCount[g]!]!.t);
          seenCount[g]!++;
        }
        if (g === '1m') {
          for (const p of body.points) {
            const end = Date.parse(p.window_start) + 60_000;
            if (p.final && p.clicks > 0 && !finalSeen.has(end) && end > t0 + 60_000) {
              finalSeen.add(end);
              finals.push(now - end);
            }
          }
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    clearInterval(sender);
  }
  return { sent: seq, accepted: accepted.length, visible, finals };
}
