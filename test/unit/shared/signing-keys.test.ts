import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEV_SIGNING_KEYS, loadConfig, parseSigningKeys, signingKeysFor } from '../../../src/shared/config.ts';

const S32 = 'x'.repeat(32);
const SECRET = 'not-to-be-echoed-7f3a9c1e5b2d8f04a6c3';

/** Every message of a failed start-up; none may quote secret text. */
function failure(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  assert.fail('expected a configuration error');
}

test('signing keys: an empty ADCLICK_SIGNING_KEYS stops start-up instead of enabling the dev key', () => {
  for (const raw of ['', ' ', ' , ']) {
    const msg = failure(() => loadConfig({ ADCLICK_SIGNING_KEYS: raw }));
    assert.match(msg, /ADCLICK_SIGNING_KEYS is set but empty/);
  }
  // Unset (not empty) is the development default, on loopback only.
  assert.deepEqual([...signingKeysFor(loadConfig({}))], [...parseSigningKeys(DEV_SIGNING_KEYS)]);
});

test('signing keys: malformed entries and short secrets stop start-up without echoing secret text', () => {
  const cases: [string, RegExp][] = [
    [SECRET, /entry 1 must be key_id:secret/],
    [`k1:${S32},${SECRET}`, /entry 2 must be key_id:secret/],
    [`k1:`, /entry 1 must be key_id:secret/],
    [`:${SECRET}`, /entry 1 must be key_id:secret/],
    [`k|1:${SECRET}`, /entry 1: the key id must be 1-64 characters of \[A-Za-z0-9._-\]/],
    [`k1:short-${SECRET.slice(0, 10)}`, /key "k1": the secret is shorter than 32 bytes/],
    [`k1:${SECRET},k1:${SECRET}x`, /key id "k1" listed twice/],
  ];
  for (const [raw, expected] of cases) {
    const msg = failure(() => loadConfig({ ADCLICK_SIGNING_KEYS: raw }));
    assert.match(msg, expected, raw);
    assert.ok(!msg.includes(SECRET.slice(0, 12)), `message echoes secret text: ${msg}`);
    assert.ok(!msg.includes(SECRET.slice(-12)), `message echoes secret text: ${msg}`);
  }
  // Overrides (tests, the launcher) are held to the same rules.
  assert.match(failure(() => loadConfig({}, { signingKeys: 'k1:short' })), /shorter than 32 bytes/);
  assert.deepEqual([...parseSigningKeys(`k1:${S32}, k2:${S32}:2`)], [['k1', S32], ['k2', `${S32}:2`]]);
  // 32 bytes, not 32 characters: multi-byte secrets count their UTF-8 length.
  assert.doesNotThrow(() => parseSigningKeys(`k1:${'é'.repeat(16)}`));
});

test('signing keys: the public dev key is refused on a non-loopback bind', () => {
  for (const host of ['127.0.0.1', '127.9.9.9', '::1', 'localhost']) {
    assert.equal(signingKeysFor(loadConfig({ ADCLICK_BIND_HOST: host })).size, 1, host);
  }
  for (const host of ['0.0.0.0', '::', '10.1.2.3', 'gateway.example.com']) {
    const msg = failure(() => signingKeysFor(loadConfig({ ADCLICK_BIND_HOST: host })));
    assert.match(msg, /development signing key/);
    assert.match(msg, /ADCLICK_SIGNING_KEYS/);
    assert.ok(!msg.includes(DEV_SIGNING_KEYS.split(':')[1]!), 'dev secret echoed');
  }
  // Configured keys are fine on any bind.
  assert.deepEqual([...signingKeysFor(loadConfig({ ADCLICK_BIND_HOST: '0.0.0.0', ADCLICK_SIGNING_KEYS: `k1:${S32}` }))], [['k1', S32]]);
});
