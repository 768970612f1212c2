// Query API keys: `ak_` + 32 random bytes (base64url). Only the SHA-256 hex of a key is
// stored; each key belongs to exactly one advertiser. Revocation is a newer row
// (ReplacingMergeTree(updated_at)); reads pick the newest row themselves, so they do not
// depend on merges.
import { createHash, randomBytes } from 'node:crypto';
import { DB } from './migrations.ts';
import type { Store } from './store.ts';

export interface ApiKeyRecord { advertiser_id: number; key_hash: string; created_at_ms: number; revoked: boolean }

const KEY_PREFIX = 'ak_';
const KEY_BYTES = 32;
// 32 bytes are 43 base64url characters; the last one carries 4 bits and two zero bits, so
// it is one of 16 letters: a token with any other last character was never minted.
const KEY_FORMAT = /^ak_[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

export function hashApiKey(apiKey: string): string {
  return createHash('sha256').update(apiKey, 'utf8').digest('hex');
}

/**
 * Whether `s` can be a key createApiKey minted. Checked before any storage lookup, so a
 * token that cannot be one costs no storage work.
 */
export function looksLikeApiKey(s: string): boolean {
  return KEY_FORMAT.test(s);
}

// Keys minted by this process so far. The query API remembers failed lookups for a few
// seconds; a key minted here meanwhile must work at once, so a mint makes those memories
// stale. (Another process minting is covered by the memories' short TTL.)
let minted = 0;

/** Changes whenever this process mints a key. */
export function apiKeyMintEpoch(): number {
  return minted;
}

/** For keys that enter storage by another path (tests' in-memory repositories). */
export function noteApiKeyMinted(): void {
  minted++;
}

export async function createApiKey(store: Store, advertiserId: number, nowMs = Date.now()): Promise<{ api_key: string; key_hash: string }> {
  if (!Number.isSafeInteger(advertiserId) || advertiserId <= 0) throw new Error('advertiser_id must be a positive integer below 2^53');
  const api_key = KEY_PREFIX + randomBytes(KEY_BYTES).toString('base64url');
  const key_hash = hashApiKey(api_key);
  try {
    await store.insert(`${DB}.api_keys`, [
      { key_hash, advertiser_id: advertiserId, created_at: Math.floor(nowMs / 1000), revoked: 0, updated_at: nowMs },
    ]);
  } finally {
    // After the insert: a failed lookup that started before it is remembered under an
    // older epoch, so it is stale however late it finishes.
    noteApiKeyMinted();
  }
  return { api_key, key_hash };
}

/** The newest state of a key, revoked or not; null when unknown. */
export async function getApiKeyRecord(store: Store, keyHash: string): Promise<(ApiKeyRecord & { updated_at: number }) | null> {
  if (!/^[0-9a-f]{64}$/.test(keyHash)) return null;
  const rows = await store.query<{ advertiser_id: number; revoked: number; updated_at: number; created_s: number }>(
    `SELECT advertiser_id, revoked, updated_at, toUInt32(created_at) AS created_s FROM ${DB}.api_keys WHERE key_hash = {h:String}`,
    { h: keyHash },
  );
  if (rows.length === 0) return null;
  // Newest row wins; on a tie a revocation wins.
  const top = rows.reduce((a, b) => {
    const d = Number(b.updated_at) - Number(a.updated_at);
    return d > 0 || (d === 0 && Number(b.revoked) > Number(a.revoked)) ? b : a;
  });
  return {
    advertiser_id: Number(top.advertiser_id),
    key_hash: keyHash,
    created_at_ms: Number(top.created_s) * 1000,
    revoked: Number(top.revoked) === 1,
    updated_at: Number(top.updated_at),
  };
}

/** An active (not revoked) key by its hash, or null. What the query API authenticates with. */
export async function findApiKey(store: Store, keyHash: string): Promise<ApiKeyRecord | null> {
  const r = await getApiKeyRecord(store, keyHash);
  if (!r || r.revoked) return null;
  return { advertiser_id: r.advertiser_id, key_hash: r.key_hash, created_at_ms: r.created_at_ms, revoked: false };
}

/** Revoke a key (given in clear). False when the key is unknown. Idempotent. */
export async function revokeApiKey(store: Store, apiKey: string, nowMs = Date.now()): Promise<boolean> {
  const keyHash = hashApiKey(apiKey);
  const r = await getApiKeyRecord(store, keyHash);
  if (!r) return false;
  if (r.revoked) return true;
  await store.insert(`${DB}.api_keys`, [
    { key_hash: keyHash, advertiser_id: r.advertiser_id, created_at: Math.floor(r.created_at_ms / 1000), revoked: 1, updated_at: Math.max(nowMs, r.updated_at + 1) },
  ]);
  return true;
}
