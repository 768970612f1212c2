import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cachedAnswer } from '../../../src/shared/cached-answer.ts';

test('concurrent callers share one computation; the answer is kept for ttl; a failure is not kept', async () => {
  let t = 0;
  let calls = 0;
  let fail = false;
  const get = cachedAnswer(async () => {
    calls++;
    await new Promise((r) => setImmediate(r));
    if (fail) throw new Error('down');
    return calls;
  }, 1000, () => t);
  assert.deepEqual(await Promise.all([get(), get(), get()]), [1, 1, 1]);
  t = 999;
  assert.equal(await get(), 1);
  t = 1000;
  fail = true;
  await assert.rejects(Promise.all([get(), get()]), /down/);
  assert.equal(calls, 2, 'the waiting callers shared the failing one');
  fail = false;
  assert.equal(await get(), 3, 'the failure was not kept');
});
