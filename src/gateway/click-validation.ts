// Validation of one click body (API.md "POST /v1/clicks"). Pure: no I/O, no clock
// reads except the `now` passed in, so every error path is unit-testable.
import { AppError } from '../shared/errors.ts';
import { verifySignature, type SignableClick } from '../shared/signature.ts';

export interface Click extends SignableClick {
  signature: string;
}

const ID_CHARS = /^[A-Za-z0-9._:-]+$/;
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;

function idString(body: Record<string, unknown>, field: string, min: number, max: number): string {
  const v = body[field];
  if (typeof v !== 'string') throw new AppError('INVALID_FIELD', `${field} must be a string`, { field });
  if (v.length < min || v.length > max || !ID_CHARS.test(v)) {
    throw new AppError('INVALID_FIELD', `${field} must be ${min}-${max} characters of [A-Za-z0-9._:-]`, { field });
  }
  return v;
}

function positiveId(body: Record<string, unknown>, field: string): number {
  const v = body[field];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new AppError('INVALID_FIELD', `${field} must be a positive integer below 2^53`, { field });
  }
  return v;
}

/** Shape and field checks only; signature and time range are checked by `verifyClick`. */
export function parseClick(body: unknown, path = ''): Click {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new AppError('INVALID_FIELD', 'click must be a JSON object', { field: path || undefined });
  }
  const b = body as Record<string, unknown>;
  const f = (name: string) => (path ? `${path}.${name}` : name);
  try {
    const impression_id = idString(b, 'impression_id', 8, 128);
    let event_type = 'click';
    if (b.event_type !== undefined) {
      if (b.event_type !== 'click') throw new AppError('INVALID_FIELD', 'event_type must be "click"', { field: 'event_type' });
      event_type = b.event_type;
    }
    const ad_id = positiveId(b, 'ad_id');
    const campaign_id = positiveId(b, 'campaign_id');
    const advertiser_id = positiveId(b, 'advertiser_id');
    const user_id = idString(b, 'user_id', 1, 128);
    const ts = b.timestamp;
    if (typeof ts !== 'number' || !Number.isSafeInteger(ts) || ts <= 0) {
      throw new AppError('INVALID_FIELD', 'timestamp must be a positive integer (epoch milliseconds)', { field: 'timestamp' });
    }
    const key_id = b.key_id;
    if (typeof key_id !== 'string' || !KEY_ID.test(key_id)) {
      throw new AppError('INVALID_FIELD', 'key_id must be 1-64 characters of [A-Za-z0-9._-]', { field: 'key_id' });
    }
    const signature = b.signature;
    if (typeof signature !== 'string') throw new AppError('INVALID_FIELD', 'signature must be a string', { field: 'signature' });
    return { impression_id, event_type, ad_id, campaign_id, advertiser_id, user_id, timestamp: ts, key_id, signature };
  } catch (err) {
    if (err instanceof AppError && path && err.field) throw new AppError(err.code, err.message, { field: f(err.field) });
    throw err;
  }
}

export interface VerifyOptions {
  keys: ReadonlyMap<string, string>;
  now: number;
  maxClickAgeMs: number;
  maxClockSkewMs: number;
}

/** Key, signature, then time range: an unsigned body learns nothing about the accepted window. */
export function verifyClick(c: Click, o: VerifyOptions): void {
  const secret = o.keys.get(c.key_id);
  if (secret === undefined) throw new AppError('UNKNOWN_KEY', `signing key "${c.key_id}" is not active`);
  if (!verifySignature(c, c.signature, secret)) throw new AppError('SIGNATURE_INVALID');
  if (c.timestamp < o.now - o.maxClickAgeMs || c.timestamp > o.now + o.maxClockSkewMs) {
    throw new AppError('TIMESTAMP_OUT_OF_RANGE', 'timestamp is older than the maximum click age or too far in the future', { field: 'timestamp' });
  }
}
