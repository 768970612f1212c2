// Click signatures (API.md "Click ingestion"): HMAC-SHA256 over a canonical string,
// lowercase hex. Ad servers sign with signClick; the gateway verifies in constant time.
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

export interface SignableClick {
  key_id: string;
  event_type: string;
  impression_id: string;
  ad_id: number;
  campaign_id: number;
  advertiser_id: number;
  user_id: string;
  timestamp: number;
}

export function canonicalString(c: SignableClick): string {
  // Numbers in plain decimal: IDs are integers below 2^53, so String() never uses exponents.
  return `v1|${c.key_id}|${c.event_type}|${c.impression_id}|${c.ad_id}|${c.campaign_id}|${c.advertiser_id}|${c.user_id}|${c.timestamp}`;
}

export function signClick(c: SignableClick, secret: string): string {
  return createHmac('sha256', secret).update(canonicalString(c)).digest('hex');
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Constant-time check; a malformed signature is simply "does not verify". */
export function verifySignature(c: SignableClick, signature: string, secret: string): boolean {
  if (!HEX64.test(signature)) return false;
  const expected = createHmac('sha256', secret).update(canonicalString(c)).digest();
  return timingSafeEqual(expected, Buffer.from(signature, 'hex'));
}

/**
 * A gateway-side secret for `purpose`, derived (HKDF-SHA256) from every signing key, so
 * gateways configured alike derive the same one without another secret to distribute, and
 * nobody without the signing keys can. It changes whenever the key set does (rotation).
 */
export function deriveFromSigningKeys(keys: ReadonlyMap<string, string>, purpose: string): Buffer {
  const ikm = [...keys].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([id, secret]) => `${id}:${secret}`).join('\n');
  return Buffer.from(hkdfSync('sha256', ikm, 'adclick', purpose, 32));
}
