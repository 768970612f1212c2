// Each query API request runs in an `interactive` storage scope (src/store/storage-scope.ts)
// whose signal is aborted when the client goes away before its answer was written: the
// storage calls it still has waiting are then dropped instead of run for nobody.
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { runInStorageScope } from '../store/storage-scope.ts';

/** An onRequest hook (callback style: the rest of the request runs inside `done`). */
export function storageScopeHook(_request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  const abort = new AbortController();
  const res = reply.raw;
  // 'close' also follows a normal end; only a close before the answer was written means the client left.
  res.once('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  runInStorageScope({ lane: 'interactive', signal: abort.signal }, done);
}
