// The demo's own catalogue (`npm start` = `adclick up --demo`). Its ids live in a range
// reserved for the demo, far above anything a real issuer or `adclick simulate` (ids from
// 1) uses, so demo traffic never shares an ad, campaign or advertiser with real clicks.
import type { CatalogueOptions } from './traffic-model.ts';

/** Every id above this (and below 2^53) is reserved for the demo. */
export const DEMO_ID_FLOOR = 9_000_000_000_000_000;

export const DEMO_CATALOGUE: Readonly<Required<CatalogueOptions>> = Object.freeze({
  ads: 500,
  campaigns: 50,
  advertisers: 5,
  adIdBase: DEMO_ID_FLOOR + 1,
  campaignIdBase: DEMO_ID_FLOOR + 1,
  advertiserIdBase: DEMO_ID_FLOOR + 1,
});

/** The advertiser the demo API key is minted for. */
export const DEMO_ADVERTISER_ID = DEMO_CATALOGUE.advertiserIdBase;

export const isDemoId = (id: number): boolean => id > DEMO_ID_FLOOR;

/** "first–last" of one kind of demo id, for the start-up banner. */
export function demoRange(kind: 'ads' | 'campaigns' | 'advertisers'): string {
  const base = kind === 'ads' ? DEMO_CATALOGUE.adIdBase : kind === 'campaigns' ? DEMO_CATALOGUE.campaignIdBase : DEMO_CATALOGUE.advertiserIdBase;
  return `${base}–${base + DEMO_CATALOGUE[kind] - 1}`;
}
