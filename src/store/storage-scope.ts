// Who is asking for storage work, carried through async calls (AsyncLocalStorage) so the
// store can shed work nobody waits for without every read helper passing a signal along.
// Work outside any scope (the sink, migrations, monitors) is background work: never shed.
import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * `interactive`: an answer someone is waiting for (query API reads).
 * `lookup`: an API-key lookup for a key not known to be good: a stranger can cause as
 * many as they like, so they queue behind everything else and in a smaller queue.
 */
export type StorageLane = 'interactive' | 'lookup';

export interface StorageScope {
  readonly lane: StorageLane;
  /** Aborted when nobody waits for the answer any more (the HTTP client went away). */
  readonly signal?: AbortSignal;
}

const current = new AsyncLocalStorage<StorageScope>();

export function runInStorageScope<T>(scope: StorageScope, fn: () => T): T {
  return current.run(scope, fn);
}

export function currentStorageScope(): StorageScope | undefined {
  return current.getStore();
}
