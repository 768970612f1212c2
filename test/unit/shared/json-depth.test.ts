import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { JsonDepthScanner } from '../../../src/shared/json-depth.ts';

/** The nesting of a parsed value, the oracle (iterative: values may be deep). */
function depthOf(value: unknown): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    max = Math.max(max, d + 1);
    for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return max;
}

test('depth scan: agrees with the parsed value however the bytes are split (strings, escapes, multi-byte text)', () => {
  const text = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.constantFrom('\\[', '"]', '[', ']', '{', '}', '"', '\\', '\\"', 'é', '😀'));
  const value = fc.letrec((tie) => ({
    node: fc.oneof({ depthSize: 'small' }, text, fc.integer(), fc.constant(null), fc.array(tie('node'), { maxLength: 3 }), fc.dictionary(text, tie('node'), { maxKeys: 3 })),
  })).node;
  fc.assert(
    fc.property(value, fc.integer({ min: 0, max: 6 }), (v, max) => {
      const bytes = Buffer.from(JSON.stringify(v), 'utf8');
      const expected = depthOf(v) > max;
      assert.equal(new JsonDepthScanner(max).push(bytes), expected);
      // Every split into two pieces (a piece may end inside an escape or a character).
      for (let cut = 0; cut <= bytes.length; cut++) {
        const scanner = new JsonDepthScanner(max);
        const deep = scanner.push(bytes.subarray(0, cut)) || scanner.push(bytes.subarray(cut));
        assert.equal(deep, expected, `split at ${cut} of ${bytes.toString('utf8')}`);
      }
    }),
    { numRuns: 500 },
  );
});

test('depth scan: a 1 MiB bracket run stops at the first bracket too deep', () => {
  assert.equal(new JsonDepthScanner(8).push(Buffer.from('['.repeat(8) + ']'.repeat(8))), false);
  assert.equal(new JsonDepthScanner(8).push(Buffer.from('['.repeat(9))), true);
  assert.equal(new JsonDepthScanner(8).push(Buffer.from(JSON.stringify({ a: '[[[[[[[[[[[[[[[[\\"[[[[[[' }))), false);
});
