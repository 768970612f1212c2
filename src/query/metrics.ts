// RED metrics of the query API. Labels use route patterns (`/v1/ads/:ad_id/clicks`),
// never raw URLs, so ids cannot blow up label cardinality.
import { Counter, Histogram, Registry } from 'prom-client';

export interface QueryMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'route' | 'status'>;
  readonly duration: Histogram<'route'>;
  readonly clientErrors: Counter<'code'>;
}

/** Reuses metrics already in the registry, so two apps may share one registry. */
export function createQueryMetrics(registry: Registry = new Registry()): QueryMetrics {
  const requests =
    (registry.getSingleMetric('adclick_query_requests_total') as Counter<'route' | 'status'> | undefined) ??
    new Counter({
      name: 'adclick_query_requests_total',
      help: 'Query API requests by route pattern and HTTP status',
      labelNames: ['route', 'status'] as const,
      registers: [registry],
    });
  const duration =
    (registry.getSingleMetric('adclick_query_request_seconds') as Histogram<'route'> | undefined) ??
    new Histogram({
      name: 'adclick_query_request_seconds',
      help: 'Query API request duration by route pattern',
      labelNames: ['route'] as const,
      buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
  const clientErrors =
    (registry.getSingleMetric('adclick_query_client_errors_total') as Counter<'code'> | undefined) ??
    new Counter({
      name: 'adclick_query_client_errors_total',
      help: 'Requests refused by the HTTP parser before routing: BAD_REQUEST (not HTTP), REQUEST_TIMEOUT (headers or body too slow), HEADERS_TOO_LARGE',
      labelNames: ['code'] as const,
      registers: [registry],
    });
  return { registry, requests, duration, clientErrors };
}
