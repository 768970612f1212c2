import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface SinkMetrics {
  batchRows: Histogram;
  batchSeconds: Histogram;
  rowsTotal: Counter<'table'>;
  recordsTotal: Counter<'kind'>;
  deadLetters: Counter;
  quarantined: Counter<'table'>;
  writeFailures: Counter;
  commitFailures: Counter;
  revokedCommitsSkipped: Counter;
  consumerLag: Gauge<'topic' | 'partition'>;
  paused: Gauge;
}

export function createSinkMetrics(registry: Registry): SinkMetrics {
  const registers = [registry];
  return {
    batchRows: new Histogram({ name: 'adclick_sink_batch_rows', help: 'Kafka records per sink batch', buckets: [1, 10, 100, 1000, 5000, 10_000, 25_000, 50_000, 100_000], registers }),
    batchSeconds: new Histogram({ name: 'adclick_sink_batch_seconds', help: 'Time to write one batch to ClickHouse and commit its offsets', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers }),
    rowsTotal: new Counter({ name: 'adclick_sink_rows_total', help: 'Rows inserted into ClickHouse, by table (a retried batch counts again)', labelNames: ['table'], registers }),
    recordsTotal: new Counter({ name: 'adclick_sink_records_total', help: 'Kafka records stored and committed, by kind (the topic role: aggregates, watermarks, late, dlq, deduped, ...)', labelNames: ['kind'], registers }),
    deadLetters: new Counter({ name: 'adclick_sink_dead_letters_total', help: 'Records the sink could not use and wrote to dead_letters', registers }),
    quarantined: new Counter({ name: 'adclick_sink_quarantined_total', help: 'Rows ClickHouse refused for good, by table: their records are in dead_letters (reason STORE_REFUSED), the rest of their batch was stored; alert on any increase', labelNames: ['table'], registers }),
    writeFailures: new Counter({ name: 'adclick_sink_write_failures_total', help: 'Failed batch writes (the batch is retried, offsets not committed)', registers }),
    commitFailures: new Counter({ name: 'adclick_sink_commit_failures_total', help: 'Failed offset commits after a successful write (records will be re-delivered and collapse)', registers }),
    revokedCommitsSkipped: new Counter({ name: 'adclick_sink_revoked_commits_skipped_total', help: 'Partition offsets a stored batch did not commit because the partition had moved to another sink of the group (its new owner re-reads them; rows collapse)', registers }),
    consumerLag: new Gauge({ name: 'adclick_sink_consumer_lag', help: 'Records behind the partition high watermark at the last fetched batch', labelNames: ['topic', 'partition'], registers }),
    paused: new Gauge({ name: 'adclick_sink_paused', help: '1 while consumption waits for room (backpressure or ClickHouse unavailable)', registers }),
  };
}
