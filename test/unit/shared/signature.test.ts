import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalString, signClick, verifySignature } from '../../../src/shared/signature.ts';

const click = { key_id: 'k1', event_type: 'click', impression_id: 'imp_7f9c2b1e4a', ad_id: 1234, campaign_id: 55, advertiser_id: 7, user_id: 'u_93af', timestamp: 1764237600123 };

test('canonical string follows API.md exactly', () => {
  assert.equal(canonicalString(click), 'v1|k1|click|imp_7f9c2b1e4a|1234|55|7|u_93af|1764237600123');
});

test('signature is the lowercase hex HMAC-SHA256 of the canonical string (known vector)', () => {
  // Computed independently: printf 'v1|k1|click|imp_7f9c2b1e4a|1234|55|7|u_93af|1764237600123' | openssl dgst -sha256 -hmac secret
  assert.equal(signClick(click, 'secret'), 'bf0daf47740ac24b9273afbe2f8052b60995e05129104c7928ca0813f730fe54');
});

test('verify accepts the right secret and rejects tampering, other secrets and malformed signatures', () => {
  const sig = signClick(click, 'secret');
  assert.equal(verifySignature(click, sig, 'secret'), true);
  assert.equal(verifySignature(click, sig, 'other'), false);
  assert.equal(verifySignature({ ...click, ad_id: 1235 }, sig, 'secret'), false);
  assert.equal(verifySignature({ ...click, timestamp: click.timestamp + 1 }, sig, 'secret'), false);
  assert.equal(verifySignature(click, sig.toUpperCase(), 'secret'), false);
  assert.equal(verifySignature(click, sig.slice(0, 63), 'secret'), false);
  assert.equal(verifySignature(click, '', 'secret'), false);
});
