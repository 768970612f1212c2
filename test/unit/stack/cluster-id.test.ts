import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newClusterId } from '../../../src/stack/kafka-broker.ts';

test('cluster ids are 22 base64url chars and never start with "-" (seen failing kafka-storage format)', () => {
  // 0xf8 0x.. encodes to a leading '-' in base64url: the first draw must be rejected.
  const draws = [Buffer.from([0xf8, ...Array(15).fill(1)]), Buffer.from(Array(16).fill(7))];
  const id = newClusterId(() => draws.shift()!);
  assert.equal(id, Buffer.from(Array(16).fill(7)).toString('base64url'));
  for (let i = 0; i < 2000; i++) {
    const x = newClusterId();
    assert.match(x, /^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
  }
});
