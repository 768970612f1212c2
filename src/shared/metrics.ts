// Prometheus metrics: one registry per service instance (passed in, never global, so
// tests can build several apps in one process), with default process metrics.
import { Registry, collectDefaultMetrics, Counter, Histogram, Gauge } from 'prom-client';

export { Registry, Counter, Histogram, Gauge };

export function createRegistry(service: string, withDefaults = true): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  if (withDefaults) collectDefaultMetrics({ register: registry, prefix: 'adclick_' });
  return registry;
}

/** RED metrics of an HTTP service, labelled by route pattern (never the raw URL). */
export function httpMetrics(registry: Registry, prefix: string) {
  return {
    requests: new Counter({
      name: `${prefix}_requests_total`,
      help: 'HTTP requests by route and status code',
      labelNames: ['route', 'status'] as const,
      registers: [registry],
    }),
    duration: new Histogram({
      name: `${prefix}_request_seconds`,
      help: 'HTTP request duration by route',
      labelNames: ['route'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
  };
}
