// ADCLICK_FLINK_REST_URL takes every JobManager's REST URL (HA): a comma-separated list,
// each entry checked at start-up, the stray comma of a badly rendered list refused by name.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configToEnv, flinkRestUrlFor, flinkRestUrlsFor, loadConfig } from '../../../src/shared/config.ts';

test('ADCLICK_FLINK_REST_URL: one URL or a comma-separated list, in order, trailing slashes off', () => {
  const one = loadConfig({ ADCLICK_FLINK_REST_URL: 'http://jm:8081/' });
  assert.deepEqual(flinkRestUrlsFor(one), ['http://jm:8081']);
  assert.equal(flinkRestUrlFor(one), 'http://jm:8081');

  const two = loadConfig({ ADCLICK_FLINK_REST_URL: ' http://10.231.0.13:8081/ , https://10.231.0.17:8081 ' });
  assert.deepEqual(flinkRestUrlsFor(two), ['http://10.231.0.13:8081', 'https://10.231.0.17:8081']);
  assert.equal(flinkRestUrlFor(two), 'http://10.231.0.13:8081', 'single-URL callers get the first');
  assert.deepEqual(flinkRestUrlsFor(loadConfig(configToEnv(two))), flinkRestUrlsFor(two), 'a child started from the config reads the same list');

  // Unset: the local job's, as before.
  const local = loadConfig({ ADCLICK_FLINK_BIND_HOST: '0.0.0.0', ADCLICK_FLINK_UI_PORT: '9' });
  assert.deepEqual(flinkRestUrlsFor(local), ['http://127.0.0.1:9']);
});

test('ADCLICK_FLINK_REST_URL: an empty entry or a non-http(s) entry stops start-up naming the key', () => {
  const refused = (value: string, why: RegExp) => assert.throws(() => loadConfig({ ADCLICK_FLINK_REST_URL: value }), (err: Error) => {
    assert.match(err.message, /ADCLICK_FLINK_REST_URL/);
    assert.match(err.message, why);
    return true;
  }, JSON.stringify(value));
  refused('http://a:8081,', /empty entry .*stray comma/);
  refused('http://a:8081,,http://b:8081', /empty entry/);
  refused(',http://b:8081', /empty entry/);
  refused('http://a:8081, ', /empty entry/);
  refused('http://a:8081,b:8081', /"b:8081" is not an http\(s\) URL/);
  refused('jm:8081', /is not an http\(s\) URL/);
  refused('ftp://jm/', /is not an http\(s\) URL/);
  refused('http://a:8081,not a url', /"not a url" is not an http\(s\) URL/);
  // Set but empty, or only commas: the value failed to render.
  refused('', /is set but empty/);
  refused(' , ', /is set but empty/);
});

test('ADCLICK_FLINK_REST_URL: credentials in a bad entry are not echoed', () => {
  assert.throws(() => loadConfig({ ADCLICK_FLINK_REST_URL: 'http://u:s3cret@a:8081,,' }), (err: Error) => {
    assert.doesNotMatch(err.message, /s3cret/);
    return true;
  });
  assert.throws(() => loadConfig({ ADCLICK_FLINK_REST_URL: 'gopher://u:s3cret@a:8081' }), (err: Error) => {
    assert.doesNotMatch(err.message, /s3cret/);
    return true;
  });
});
