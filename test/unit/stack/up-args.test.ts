import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseUpArgs, renderBanner } from '../../../src/stack/cli-commands.ts';

describe('adclick up arguments', () => {
  it('starts no traffic and mints no key without --demo', () => {
    assert.deepEqual(parseUpArgs([]), { demo: false, trafficRate: 20 });
    assert.equal(parseUpArgs([]).demo, false);
  });
  it('--demo (npm start) sends 20 clicks/s unless told otherwise', () => {
    assert.deepEqual(parseUpArgs(['--demo']), { demo: true, trafficRate: 20 });
    assert.deepEqual(parseUpArgs(['--demo', '--no-traffic']), { demo: true, trafficRate: 0 });
    assert.deepEqual(parseUpArgs(['--demo', '--traffic-rate=5']), { demo: true, trafficRate: 5 });
  });
  it('refuses traffic options without --demo, unknown options and bad rates', () => {
    assert.throws(() => parseUpArgs(['--traffic-rate=5']), /only apply to the demo/);
    assert.throws(() => parseUpArgs(['--no-traffic']), /only apply to the demo/);
    assert.throws(() => parseUpArgs(['--demo', '--traffic-rate=-1']), /must be a number/);
    assert.throws(() => parseUpArgs(['--demo', '--traffic-rate=x']), /must be a number/);
    assert.throws(() => parseUpArgs(['--dmeo']), /unknown option/);
  });
});

describe('start-up banner', () => {
  const urls = { gateway: 'http://127.0.0.1:8080', query: 'http://127.0.0.1:8081', flinkUi: 'http://127.0.0.1:8082' };
  it('shows the URLs and next commands; the demo key and reserved ids only for the demo', () => {
    const plain = renderBanner(urls, undefined, false);
    assert.match(plain, /AdClick is running/);
    assert.match(plain, /dashboard\s+http:\/\/127\.0\.0\.1:8081\//);
    assert.match(plain, /adclick keys create --advertiser/);
    assert.match(plain, /adclick verify --ledger/);
    assert.doesNotMatch(plain, /ak_|Demo/);
    assert.doesNotMatch(plain, /\x1b\[/);
    const demo = renderBanner(urls, { apiKey: 'ak_test', rate: 20, ledgerPath: '/d/l.ndjson' }, true);
    assert.match(demo, /ak_test/);
    assert.match(demo, /9000000000000001/);
    assert.match(demo, /curl -s -H 'Authorization: Bearer ak_test' http:\/\/127\.0\.0\.1:8081\/v1\/campaigns/);
    assert.match(demo, /\x1b\[1m/);
  });
});
