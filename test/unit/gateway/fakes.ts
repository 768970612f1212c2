// Fakes for gateway unit tests only (integration tests use real Kafka and Redis).
import { AppError } from '../../../src/shared/errors.ts';
import type { ClickPublisher, OutRecord } from '../../../src/gateway/click-publisher.ts';
import type { EdgeDedup } from '../../../src/gateway/edge-dedup.ts';
import type { RateLimiter } from '../../../src/gateway/rate-limiter.ts';

export class FakePublisher implements ClickPublisher {
  records: OutRecord[] = [];
  mode: 'ok' | 'down' | 'nack' = 'ok';
  publish(records: readonly OutRecord[]): Promise<boolean[]> {
    if (this.mode === 'down') throw new AppError('UNAVAILABLE', 'Kafka is not connected');
    if (this.mode === 'nack') return Promise.resolve(records.map(() => false));
    this.records.push(...records);
    return Promise.resolve(records.map(() => true));
  }
  partitionCount = async () => 3;
  ready = () => this.mode === 'ok';
  inflight = () => 0;
  breakerState = () => 'closed' as const;
  close = async () => {};
}

export class FakeDedup implements EdgeDedup {
  readonly keys = new Set<string>();
  async seen(keys: readonly string[]) {
    return keys.map((k) => this.keys.has(k));
  }
  async mark(keys: readonly string[]) {
    for (const k of keys) this.keys.add(k);
  }
}

export class FakeLimiter implements RateLimiter {
  deny = false;
  ips: string[] = [];
  async check(ip: string) {
    this.ips.push(ip);
    return this.deny ? { allowed: false, retryAfterMs: 1500 } : { allowed: true, retryAfterMs: 0 };
  }
}
