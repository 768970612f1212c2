// The synthetic traffic: a catalogue of ads → campaigns → advertisers, Zipf-skewed ad
// popularity, users, unique impression ids, event times with a share out of order, and
// a share of clicks planned to be sent twice. Pure and seeded: the same seed and the same
// sequence of `now` values give the same clicks.
import { createRng, type Rng } from './prng.ts';
import { ZipfSampler } from './zipf-sampler.ts';

export interface CatalogueAd {
  readonly ad_id: number;
  readonly campaign_id: number;
  readonly advertiser_id: number;
}

export interface CatalogueOptions {
  ads: number;
  campaigns: number;
  advertisers: number;
  /** First id of each kind (ids are consecutive from there). Default 1. */
  adIdBase?: number;
  campaignIdBase?: number;
  advertiserIdBase?: number;
}

export interface Catalogue {
  readonly ads: readonly CatalogueAd[];
  readonly campaigns: number;
  readonly advertisers: number;
  /** campaign_id → advertiser_id */
  readonly advertiserOf: ReadonlyMap<number, number>;
}

/**
 * The catalogue's structure depends only on its sizes and id bases, never on the seed:
 * campaign c belongs to advertiser c mod A, ad a to campaign a mod C. Runs with different
 * seeds against one stack therefore never disagree about who owns a campaign, and every
 * campaign has an ad and every advertiser a campaign whenever the counts allow it.
 */
export function buildCatalogue(o: CatalogueOptions): Catalogue {
  for (const [k, v] of [['ads', o.ads], ['campaigns', o.campaigns], ['advertisers', o.advertisers]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${k} must be a positive integer, got ${v}`);
  }
  const adBase = o.adIdBase ?? 1;
  const campBase = o.campaignIdBase ?? 1;
  const advBase = o.advertiserIdBase ?? 1;
  for (const b of [adBase, campBase, advBase]) {
    if (!Number.isSafeInteger(b) || b < 1) throw new Error(`id bases must be positive integers, got ${b}`);
  }
  const advertiserOf = new Map<number, number>();
  for (let c = 0; c < o.campaigns; c++) advertiserOf.set(campBase + c, advBase + (c % o.advertisers));
  const ads: CatalogueAd[] = [];
  for (let a = 0; a < o.ads; a++) {
    const campaign_id = campBase + (a % o.campaigns);
    ads.push({ ad_id: adBase + a, campaign_id, advertiser_id: advertiserOf.get(campaign_id)! });
  }
  return { ads, campaigns: o.campaigns, advertisers: o.advertisers, advertiserOf };
}

/** The click body before signing (API.md field names). */
export interface ClickPayload {
  impression_id: string;
  event_type: string;
  ad_id: number;
  campaign_id: number;
  advertiser_id: number;
  user_id: string;
  timestamp: number;
}

export interface PlannedClick {
  readonly seq: number;
  readonly click: ClickPayload;
  /** Send the identical signed body again this many ms after the first send; null = once. */
  readonly resendAfterMs: number | null;
  readonly outOfOrder: boolean;
}

/** Chooses a click's event time. `rng` is the model's own stream (keeps runs reproducible). */
export type EventTimeFn = (seq: number, nowMs: number, rng: Rng) => number;

/**
 * Chooses whom a click is signed for, given the catalogue ad the model picked: the same ad
 * id under another campaign (the catalogue changed mid-stream) or another advertiser (an
 * issuer bug). Must not draw from the model's stream; absent = the catalogue's owner.
 */
export type AttributionFn = (ad: CatalogueAd, seq: number, nowMs: number) => CatalogueAd;

export interface TrafficModelOptions extends CatalogueOptions {
  seed: number;
  /** Identifies the run inside impression ids; [A-Za-z0-9]{1,40}. Must differ between runs
   * against one stack, or every click is a duplicate of the earlier run. */
  runId: string;
  zipfExponent?: number; // default 1.1
  users?: number; // default 100_000
  /** Normal event times are now minus uniform [0, maxDelayMs). Default 1000. */
  maxDelayMs?: number;
  outOfOrderShare?: number; // default 0.05
  /** Out-of-order clicks are shifted back by a further uniform [0, outOfOrderMaxMs). Default 20 s. */
  outOfOrderMaxMs?: number;
  duplicateShare?: number; // default 0.03
  /** Delay of a duplicate send after the first, uniform in [min, max]. Default [50, 3000]. */
  duplicateDelayMs?: readonly [number, number];
  /** Replaces the built-in event-time model (tests place clicks into chosen windows). */
  eventTime?: EventTimeFn;
  /** Re-signs the picked ad for another owner (chaos scenarios move ads mid-stream). */
  attribution?: AttributionFn;
}

export const RUN_ID_PATTERN = /^[A-Za-z0-9]{1,40}$/;

function share(name: string, v: number): number {
  if (!(v >= 0 && v <= 1)) throw new Error(`${name} must be between 0 and 1, got ${v}`);
  return v;
}

export class TrafficModel {
  readonly catalogue: Catalogue;
  readonly runId: string;
  private readonly rng: Rng;
  private readonly zipf: ZipfSampler;
  /** popularity rank → index into catalogue.ads (seeded shuffle, so the hot ads vary by seed) */
  private readonly byRank: Uint32Array;
  private readonly users: number;
  private readonly maxDelayMs: number;
  private readonly oooShare: number;
  private readonly oooMaxMs: number;
  private readonly dupShare: number;
  private readonly dupDelay: readonly [number, number];
  private readonly eventTime: EventTimeFn | undefined;
  private readonly attribution: AttributionFn | undefined;
  private seq = 0;

  constructor(o: TrafficModelOptions) {
    if (!RUN_ID_PATTERN.test(o.runId)) throw new Error(`runId must match ${RUN_ID_PATTERN}, got "${o.runId}"`);
    this.runId = o.runId;
    this.catalogue = buildCatalogue(o);
    this.rng = createRng(o.seed);
    this.zipf = new ZipfSampler(this.catalogue.ads.length, o.zipfExponent ?? 1.1);
    this.byRank = new Uint32Array(this.catalogue.ads.length);
    for (let i = 0; i < this.byRank.length; i++) this.byRank[i] = i;
    for (let i = this.byRank.length - 1; i > 0; i--) {
      const j = this.rng.int(0, i);
      const t = this.byRank[i]!;
      this.byRank[i] = this.byRank[j]!;
      this.byRank[j] = t;
    }
    this.users = o.users ?? 100_000;
    if (!Number.isInteger(this.users) || this.users < 1) throw new Error(`users must be a positive integer, got ${o.users}`);
    this.maxDelayMs = o.maxDelayMs ?? 1000;
    this.oooShare = share('outOfOrderShare', o.outOfOrderShare ?? 0.05);
    this.oooMaxMs = o.outOfOrderMaxMs ?? 20_000;
    this.dupShare = share('duplicateShare', o.duplicateShare ?? 0.03);
    this.dupDelay = o.duplicateDelayMs ?? [50, 3000];
    if (!(this.dupDelay[0] >= 0 && this.dupDelay[1] >= this.dupDelay[0])) throw new Error('duplicateDelayMs must be [min, max] with 0 <= min <= max');
    if (!(this.maxDelayMs >= 0) || !(this.oooMaxMs >= 0)) throw new Error('delays must be >= 0');
    this.eventTime = o.eventTime;
    this.attribution = o.attribution;
  }

  /** The ad at 0-based popularity rank `rank`. */
  adAtRank(rank: number): CatalogueAd {
    return this.catalogue.ads[this.byRank[rank]!]!;
  }

  /** Share of traffic the model gives the ad at `rank` (for tests and reports). */
  rankProbability(rank: number): number {
    return this.zipf.probability(rank);
  }

  get generated(): number {
    return this.seq;
  }

  next(nowMs: number): PlannedClick {
    const seq = ++this.seq;
    // Draw every random value on every click, whatever the options, so changing one
    // share does not reshuffle the rest of the stream.
    const picked = this.adAtRank(this.zipf.sample(this.rng));
    const ad = this.attribution ? this.attribution(picked, seq, nowMs) : picked;
    const user = this.rng.int(1, this.users);
    const delay = this.rng.next() * this.maxDelayMs;
    const ooo = this.rng.next() < this.oooShare;
    const shift = this.rng.next() * this.oooMaxMs;
    const dup = this.rng.next() < this.dupShare;
    const dupAfter = this.dupDelay[0] + this.rng.next() * (this.dupDelay[1] - this.dupDelay[0]);
    const timestamp = this.eventTime
      ? this.eventTime(seq, nowMs, this.rng)
      : Math.floor(nowMs - delay - (ooo ? shift : 0));
    if (!Number.isSafeInteger(timestamp)) throw new Error(`event time must be an integer epoch ms, got ${timestamp}`);
    return {
      seq,
      outOfOrder: this.eventTime ? false : ooo,
      resendAfterMs: dup ? Math.round(dupAfter) : null,
      click: {
        impression_id: `imp_${this.runId}_${seq}`,
        event_type: 'click',
        ad_id: ad.ad_id,
        campaign_id: ad.campaign_id,
        advertiser_id: ad.advertiser_id,
        user_id: `u_${user}`,
        timestamp,
      },
    };
  }
}

/** A fresh run id: time plus randomness, so two runs never share impression ids. */
export function newRunId(nowMs: number, random: () => number = Math.random): string {
  const r = Math.floor(random() * 36 ** 6).toString(36).padStart(6, '0');
  return `${nowMs.toString(36)}${r}`;
}
