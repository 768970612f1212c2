// Picks the transport: a ClickHouse server when CLICKHOUSE_URL is set, else embedded chdb.
import type { Config } from '../shared/config.ts';
import type { Logger } from '../shared/logger.ts';
import { EmbeddedStore } from './embedded-store.ts';
import { ServerStore } from './server-store.ts';
import type { Store } from './store.ts';

export async function openStore(
  config: Pick<Config, 'clickhouseUrl' | 'dataDir'> & Partial<Pick<Config, 'clickhouseCluster' | 'clickhouseInsertQuorum' | 'clickhouseTimeoutMs' | 'clickhouseColdPath' | 'clickhouseStoragePolicy' | 'storageQueueMax' | 'storageLookupQueueMax' | 'storageQueueWaitMs' | 'retryAfterSec'>>,
  logger: Logger,
): Promise<Store> {
  const queue = { maxQueued: config.storageQueueMax, maxLookupQueued: config.storageLookupQueueMax, maxWaitMs: config.storageQueueWaitMs, retryAfterSec: config.retryAfterSec };
  if (config.clickhouseUrl) return ServerStore.open({ url: config.clickhouseUrl, logger, requestTimeoutMs: config.clickhouseTimeoutMs, storagePolicy: config.clickhouseStoragePolicy, cluster: config.clickhouseCluster, insertQuorum: config.clickhouseInsertQuorum, queue: Object.fromEntries(Object.entries(queue).filter(([, v]) => v !== undefined)) });
  return EmbeddedStore.open({ path: EmbeddedStore.pathFor(config.dataDir), logger, coldPath: config.clickhouseColdPath || undefined, queue: Object.fromEntries(Object.entries(queue).filter(([, v]) => v !== undefined)) });
}
