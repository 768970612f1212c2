// The only way the page talks to the server: the public query API of API.md, with the key
// in the Authorization header. Failures are sorted into the few kinds the page reacts to
// differently, so callers branch on `kind`, never on raw status codes.

/** unauthorized (bad/revoked key) | rate-limited | not-found | bad-request | unavailable (5xx, network) */
export class ApiError extends Error {
  constructor(kind, message, { status = 0, code = null, retryAfterSec = null } = {}) {
    super(message);
    this.name = 'ApiError';
    this.kind = kind;
    this.status = status;
    this.code = code;
    this.retryAfterSec = retryAfterSec;
  }
}

function kindOf(status) {
  if (status === 401) return 'unauthorized';
  if (status === 429) return 'rate-limited';
  if (status === 404) return 'not-found';
  if (status >= 400 && status < 500) return 'bad-request';
  return 'unavailable';
}

function retryAfterOf(res) {
  const v = Number(res.headers.get('retry-after'));
  return Number.isFinite(v) && v >= 0 ? v : null;
}

const rangeParams = (range) => ({ from: String(range.fromMs), to: String(range.toMs), granularity: range.granularity });

export function createApiClient(getKey) {
  async function get(path, params, signal) {
    const url = params ? `${path}?${new URLSearchParams(params)}` : path;
    let res;
    try {
      res = await fetch(url, {
        headers: { authorization: `Bearer ${getKey()}`, accept: 'application/json' },
        cache: 'no-store',
        credentials: 'omit',
        signal,
      });
    } catch (err) {
      if (err && err.name === 'AbortError') throw err;
      throw new ApiError('unavailable', 'The API did not answer (network error).');
    }
    let body = null;
    try {
      body = await res.json();
    } catch {
      // A proxy's HTML error page or a cut connection: classified by status below.
    }
    if (res.ok && body) return body;
    const error = body && body.error ? body.error : {};
    const status = res.ok ? 502 : res.status;
    throw new ApiError(kindOf(status), error.message || `HTTP ${status}`, {
      status,
      code: error.code || null,
      retryAfterSec: retryAfterOf(res),
    });
  }

  return {
    campaigns: (signal) => get('/v1/campaigns', null, signal),
    /** All campaigns with their clicks in the range too (`clicks`, `from`, `to`, `complete_before`). */
    campaignsInRange: (range, signal) => get('/v1/campaigns', rangeParams(range), signal),
    campaignSeries: (id, range, signal) => get(`/v1/campaigns/${id}/clicks`, rangeParams(range), signal),
    campaignAds: (id, range, limit, signal) => get(`/v1/campaigns/${id}/ads`, { ...rangeParams(range), limit: String(limit) }, signal),
    adSeries: (id, range, signal) => get(`/v1/ads/${id}/clicks`, rangeParams(range), signal),
  };
}
