// Path ids and `limit`. An id that is not a positive integer below 2^53 answers
// 404 NOT_FOUND, the same body as a missing or foreign object, so probing the id space
// with malformed ids teaches nothing a well-formed one would not.
import { AppError } from '../shared/errors.ts';

const ID = /^[1-9]\d{0,15}$/;

/** The id, or null when it cannot name any object. */
export function parseId(raw: unknown): number | null {
  if (typeof raw !== 'string' || !ID.test(raw)) return null;
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : null;
}

export function parseLimit(value: unknown, def: number, max: number): number {
  if (value === undefined) return def;
  if (typeof value !== 'string' || !/^\d{1,7}$/.test(value)) {
    throw new AppError('INVALID_FIELD', `limit must be an integer from 1 to ${max}`, { field: 'limit' });
  }
  const n = Number(value);
  if (n < 1 || n > max) throw new AppError('INVALID_FIELD', `limit must be an integer from 1 to ${max}`, { field: 'limit' });
  return n;
}
