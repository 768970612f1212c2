// Finding the checkpoint the Flink job restarts from.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface CheckpointRef {
  /** `<dir>/<jobId>/chk-<n>`: what `--restore-from` takes */
  readonly path: string;
  readonly jobId: string;
  readonly id: number;
  /** mtime of its `_metadata` (written last, when the checkpoint completed) */
  readonly completedAtMs: number;
}

function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * The newest completed checkpoint under `dir` (layout `<dir>/<jobId>/chk-<n>/_metadata`),
 * or undefined. Only directories with `_metadata` count: an in-progress or aborted
 * checkpoint has none. Newest = latest `_metadata` mtime, then highest n — a restored
 * job gets a new job id, so n alone does not order checkpoints across runs.
 */
export function latestCheckpoint(dir: string): CheckpointRef | undefined {
  let best: CheckpointRef | undefined;
  for (const jobId of entries(dir)) {
    for (const chk of entries(join(dir, jobId))) {
      const m = /^chk-(\d+)$/.exec(chk);
      if (!m) continue;
      let mtime: number;
      try {
        const st = statSync(join(dir, jobId, chk, '_metadata'));
        if (!st.isFile()) continue;
        mtime = st.mtimeMs;
      } catch {
        continue;
      }
      const ref: CheckpointRef = { path: join(dir, jobId, chk), jobId, id: Number(m[1]), completedAtMs: mtime };
      if (!best || ref.completedAtMs > best.completedAtMs || (ref.completedAtMs === best.completedAtMs && ref.id > best.id)) best = ref;
    }
  }
  return best;
}
