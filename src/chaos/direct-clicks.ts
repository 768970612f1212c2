// Clicks a scenario sends itself, outside the simulator's stream (e.g. the identical body
// again a compressed "day" later). Accepted and duplicate answers go to the scenario's
// ledger exactly as the simulator records them.
import type { Ledger } from '../simulate/ledger.ts';
import type { ClickPayload } from '../simulate/traffic-model.ts';
import { signClick } from '../shared/signature.ts';
import type { ChaosStack } from './stack.ts';
import { sleep } from './util.ts';

export interface DirectAnswer {
  click: ClickPayload;
  status: number;
  /** `accepted` / `duplicate` for 202, else the error code. */
  outcome: string;
}

/** Sends one signed click; retries only answers that are not definite (503, network). */
export async function sendDirect(stack: ChaosStack, ledger: Ledger, click: ClickPayload, attempts = 20): Promise<DirectAnswer> {
  const body = JSON.stringify({ ...click, key_id: stack.keyId, signature: signClick({ ...click, key_id: stack.keyId }, stack.secret) });
  for (let i = 1; ; i++) {
    try {
      const res = await fetch(`${stack.gatewayUrl}/v1/clicks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(5000) });
      const json = (await res.json().catch(() => ({}))) as { status?: string; error?: { code?: string } };
      if (res.status !== 503 || i >= attempts) {
        if (res.status === 202) ledger.record({ ...click });
        return { click, status: res.status, outcome: res.status === 202 ? String(json.status) : String(json.error?.code ?? res.status) };
      }
    } catch (err) {
      if (i >= attempts) return { click, status: 0, outcome: `no answer: ${(err as Error).message}` };
    }
    await sleep(Math.min(2000, 100 * 2 ** i));
  }
}

/** Sends every click (a few at a time); answers in the clicks' order. */
export async function sendAllDirect(stack: ChaosStack, ledger: Ledger, clicks: readonly ClickPayload[]): Promise<DirectAnswer[]> {
  const out: DirectAnswer[] = new Array(clicks.length);
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < clicks.length) {
      const i = next++;
      out[i] = await sendDirect(stack, ledger, clicks[i]!);
    }
  }));
  return out;
}

/** "accepted 180, duplicate 20" */
export function tally(answers: readonly DirectAnswer[]): string {
  const m = new Map<string, number>();
  for (const a of answers) m.set(a.outcome, (m.get(a.outcome) ?? 0) + 1);
  return [...m].map(([k, n]) => `${k} ${n}`).join(', ');
}
