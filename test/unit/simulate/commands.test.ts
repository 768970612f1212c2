import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { DEV_SIGNING_KEYS, loadConfig } from '../../../src/shared/config.ts';
import { verifySignature } from '../../../src/shared/signature.ts';
import { parseDuration } from '../../../src/simulate/cli-options.ts';
import { runSign } from '../../../src/simulate/sign-command.ts';
import { parseSimulateArgs, runSimulate } from '../../../src/simulate/simulate-command.ts';
import { startFakeGateway, type FakeGateway } from './fake-gateway.ts';

const dir = mkdtempSync(join(tmpdir(), 'adclick-cmd-'));
const servers: FakeGateway[] = [];
after(async () => {
  for (const g of servers) await g.close();
  rmSync(dir, { recursive: true, force: true });
});

function sink(): { write(s: string): boolean; text: () => string; isTTY?: boolean } {
  let buf = '';
  return { write: (s: string) => ((buf += s), true), text: () => buf };
}

const CLICK = { impression_id: 'imp_7f9c2b1e4a', ad_id: 1234, campaign_id: 55, advertiser_id: 7, user_id: 'u_93af', timestamp: 1764237600123 };

describe('adclick sign', () => {
  it('adds key_id and a signature that verifies', async () => {
    const out = sink();
    const code = await runSign(['--key-id', 'k1', '--secret', 's3cret', JSON.stringify(CLICK)], { stdout: out, config: loadConfig({}) });
    assert.equal(code, 0);
    const signed = JSON.parse(out.text()) as Record<string, unknown>;
    assert.equal(signed.key_id, 'k1');
    assert.equal(signed.event_type, 'click');
    assert.match(String(signed.signature), /^[0-9a-f]{64}$/);
    assert.ok(verifySignature({ ...CLICK, key_id: 'k1', event_type: 'click' }, String(signed.signature), 's3cret'));
    assert.ok(!verifySignature({ ...CLICK, key_id: 'k1', event_type: 'click' }, String(signed.signature), 'other'));
  });

  it('reads stdin, converts an ISO timestamp and defaults to the configured key', async () => {
    const out = sink();
    const input = Readable.from([JSON.stringify({ ...CLICK, timestamp: '2025-11-27T10:00:00.123Z' })]);
    const code = await runSign([], { stdin: input, stdout: out, config: loadConfig({ ADCLICK_SIGNING_KEYS: `a:${'1'.repeat(32)},b:${'2'.repeat(32)}` }) });
    assert.equal(code, 0);
    const signed = JSON.parse(out.text()) as Record<string, unknown>;
    assert.equal(signed.key_id, 'a');
    assert.equal(signed.timestamp, Date.UTC(2025, 10, 27, 10, 0, 0, 123));
    assert.ok(verifySignature({ ...CLICK, timestamp: signed.timestamp as number, key_id: 'a', event_type: 'click' }, String(signed.signature), '1'.repeat(32)));
  });

  it('uses the dev key when nothing is configured, and refuses bad input with exit 2', async () => {
    const out = sink();
    assert.equal(await runSign([JSON.stringify(CLICK)], { stdout: out, config: loadConfig({}) }), 0);
    assert.equal((JSON.parse(out.text()) as { key_id: string }).key_id, DEV_SIGNING_KEYS.split(':')[0]);
    const err = sink();
    assert.equal(await runSign([JSON.stringify({ ...CLICK, ad_id: 0 })], { stdout: sink(), stderr: err, config: loadConfig({}) }), 2);
    assert.match(err.text(), /ad_id/);
    assert.equal(await runSign(['{nope'], { stdout: sink(), stderr: sink(), config: loadConfig({}) }), 2);
    assert.equal(await runSign(['--secret', 'x', '{}'], { stdout: sink(), stderr: sink(), config: loadConfig({}) }), 2);
  });
});

describe('adclick simulate', () => {
  it('parses flags and fills defaults from config', () => {
    const config = loadConfig({ ADCLICK_GATEWAY_PORT: '9999', ADCLICK_SIGNING_KEYS: `k9:${'z'.repeat(32)}`, ADCLICK_DATA_DIR: '/tmp/d' });
    const { options, json } = parseSimulateArgs(['--rate', '50', '--duration', '2m', '--batch', '10', '--json'], config, Date.UTC(2026, 0, 2, 3, 4, 5));
    assert.equal(options.url, 'http://127.0.0.1:9999');
    assert.equal(options.keyId, 'k9');
    assert.equal(options.secret, 'z'.repeat(32));
    assert.equal(options.rate, 50);
    assert.equal(options.durationMs, 120_000);
    assert.equal(options.batchSize, 10);
    assert.equal(options.ledgerPath, '/tmp/d/ledgers/2026-01-02T03-04-05-000Z.ndjson');
    assert.equal(json, true);
    assert.throws(() => parseSimulateArgs(['--rate', 'fast'], config), /--rate/);
    assert.throws(() => parseSimulateArgs(['--bogus'], config), /bogus/);
    assert.throws(() => parseSimulateArgs(['--batch', '5000'], config), /--batch/);
  });

  it('parses durations', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('60s'), 60_000);
    assert.equal(parseDuration('1.5m'), 90_000);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('10'), 10_000);
    assert.throws(() => parseDuration('10 days'));
  });

  it('runs against a gateway, writes the ledger and prints a JSON summary', async () => {
    const g = await startFakeGateway({ keys: { k1: 's1' }, unavailable: 0.1 });
    servers.push(g);
    const out = sink();
    const ledger = join(dir, 'cli.ndjson');
    const code = await runSimulate(
      ['--url', g.url, '--key-id', 'k1', '--secret', 's1', '--rate', '1000', '--count', '300', '--ledger', ledger, '--json', '--seed', '3'],
      { stdout: out, stderr: sink(), config: loadConfig({}), signal: new AbortController().signal },
    );
    assert.equal(code, 0, out.text());
    const summary = JSON.parse(out.text()) as { generated: number; ledgered: number; ledgerPath: string; unknown: number };
    assert.equal(summary.generated, 300);
    assert.equal(summary.ledgered, 300);
    assert.equal(summary.unknown, 0);
    assert.equal(summary.ledgerPath, ledger);
    assert.equal(readFileSync(ledger, 'utf8').trim().split('\n').length, 300);
    assert.equal(g.accepted.size, 300);
  });

  it('exits 1 when the gateway rejects the clicks (wrong secret), 2 on usage errors', async () => {
    const g = await startFakeGateway({ keys: { k1: 's1' } });
    servers.push(g);
    const out = sink();
    const code = await runSimulate(['--url', g.url, '--key-id', 'k1', '--secret', 'wrong', '--count', '5', '--ledger', join(dir, 'x.ndjson')], {
      stdout: out, stderr: sink(), config: loadConfig({}), signal: new AbortController().signal,
    });
    assert.equal(code, 1);
    assert.match(out.text(), /SIGNATURE_INVALID=5/);
    assert.equal(await runSimulate(['--count', 'x'], { stdout: sink(), stderr: sink(), config: loadConfig({}) }), 2);
  });
});
