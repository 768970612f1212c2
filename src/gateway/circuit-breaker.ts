// Closed → (N consecutive failures) → open for `openMs` → half-open: one trial at a time;
// a success closes it, a failure re-opens it. Keeps the gateway failing fast with 503
// while Kafka is down instead of piling up requests that would all time out.
export type BreakerState = 'closed' | 'open' | 'half-open';

export class CircuitBreaker {
  private failures = 0;
  private openedAt = 0;
  private trialInFlight = false;
  private current: BreakerState = 'closed';

  constructor(
    private readonly threshold: number,
    private readonly openMs: number,
    private readonly now: () => number = Date.now,
    private readonly onChange: (s: BreakerState) => void = () => {},
  ) {}

  /**
   * The state now: open turns half-open once `openMs` passed, also when only this is read.
   * Readiness reads it, and a gateway a balancer took out of rotation for an open breaker
   * gets no call to allow() that would move it on: it would stay unready for good.
   */
  get state(): BreakerState {
    if (this.current === 'open' && this.now() - this.openedAt >= this.openMs) this.set('half-open');
    return this.current;
  }

  /** True when a call may proceed now. */
  allow(): boolean {
    if (this.state === 'closed') return true;
    if (this.current === 'half-open' && !this.trialInFlight) {
      this.trialInFlight = true;
      return true;
    }
    return false;
  }

  success(): void {
    this.failures = 0;
    this.trialInFlight = false;
    if (this.current !== 'closed') this.set('closed');
  }

  failure(): void {
    this.trialInFlight = false;
    this.failures++;
    if (this.current === 'half-open' || (this.current === 'closed' && this.failures >= this.threshold)) {
      this.openedAt = this.now();
      this.set('open');
    }
  }

  private set(s: BreakerState): void {
    this.current = s;
    this.onChange(s);
  }
}
