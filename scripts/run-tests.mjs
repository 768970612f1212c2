// The one test command (`npm test`): generates code, typechecks, then runs the unit,
// integration and end-to-end suites with node's test runner and the Flink module's
// Maven tests, and ends with one summary line `N passed, N failed`.
//   npm test                 everything
//   npm test -- unit         only test/unit (no engines needed)
//   npm test -- integration  only test/integration (+ e2e)
//   npm test -- flink        only the Maven module
//   npm test -- chaos        only the fault-injection suite (test/chaos, short form)
//   npm test -- browser      only the dashboard in headless Chromium (test/browser, real stack)
//   npm test -- frontdoor    only the README's first command from a clean copy (test/frontdoor)
//   npm test -- cluster      the whole cluster form (test/cluster: Kafka, ZooKeeper + ClickHouse,
//                            the Flink session cluster, HAProxy + gateways, `adclick cluster`,
//                            every node in its own network namespace, under faults; needs root,
//                            iproute2, nftables, haproxy). About 75 min on the 2-core box.
//   npm test -- cluster-short  its short form, also part of the default run: the network
//                            teardown, the Kafka tier's faults and the ClickHouse tier's
//                            (the Flink tier's JVM restarts take 16 min: long form only)
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, mkdtempSync, existsSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const only = process.argv.slice(2);
const want = (s) => only.length === 0 || only.includes(s);
let passed = 0;
let failed = 0;
const problems = [];
// The names of failed tests, printed again just above the summary: CI keeps only the
// tail of the log, and a count without names cannot be acted on.
const failures = [];
// Wall time per suite, printed with the summary: CI has a 40-min budget to keep.
const timings = [];
const startedAt = Date.now();
function timed(name, fn) {
  const t0 = Date.now();
  try {
    return fn();
  } finally {
    timings.push(`${name} ${Math.round((Date.now() - t0) / 1000)} s`);
  }
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  return r.status ?? 1;
}

function files(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.test.ts') ? [join(dir, e.name)] : []))
    .sort();
}

function nodeSuite(name, testFiles, concurrency) {
  if (testFiles.length === 0) return;
  timed(name, () => nodeSuiteRun(name, testFiles, concurrency));
}

function nodeSuiteRun(name, testFiles, concurrency) {
  console.log(`\n=== ${name}: ${testFiles.length} files ===`);
  const tap = join(mkdtempSync(join(tmpdir(), 'adclick-tap-')), 'out.tap');
  const code = run(process.execPath, [
    '--import', 'tsx', '--test', `--test-concurrency=${concurrency}`,
    '--test-reporter=spec', '--test-reporter-destination=stdout',
    '--test-reporter=tap', `--test-reporter-destination=${tap}`,
    ...testFiles,
  ]);
  const out = existsSync(tap) ? readFileSync(tap, 'utf8') : '';
  const p = Number(/^# pass (\d+)/m.exec(out)?.[1] ?? 0);
  const f = Number(/^# fail (\d+)/m.exec(out)?.[1] ?? 0);
  const c = Number(/^# cancelled (\d+)/m.exec(out)?.[1] ?? 0);
  passed += p;
  failed += f + c;
  failures.push(...tapFailures(out).map((t) => `${name}: ${t}`));
  if (code !== 0 && f + c === 0) {
    failed += 1;
    problems.push(`${name}: runner exited ${code}`);
  }
}

// Leaf `not ok` entries of a TAP stream, each with the file it came from (the enclosing
// top-level entry) and the first line of its error.
function tapFailures(tap) {
  const lines = tap.split('\n');
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)not ok \d+ - (.*?)(?: # .*)?$/.exec(lines[i]);
    if (!m) continue;
    const indent = m[1].length;
    // A parent whose children failed is reported through the children.
    const block = [];
    for (let j = i + 1; j < lines.length && (lines[j].trim() === '' || /^\s*/.exec(lines[j])[0].length > indent); j++) block.push(lines[j]);
    const yaml = block.join('\n');
    if (/failureType: 'subtestsFailed'/.test(yaml)) continue;
    const where = /location: '([^']+)'/.exec(yaml)?.[1]?.replace(/^.*\/test\//, 'test/').replace(/:\d+:\d+$/, '') ?? '';
    const error = /^\s*error: (.*)$/m.exec(yaml)?.[1]?.replace(/^[|>]-?$/, '').slice(0, 200) ?? '';
    const errorNext = error === '' ? (/^\s*error: [|>]-?\n\s*(.*)$/m.exec(yaml)?.[1] ?? '').slice(0, 200) : error;
    out.push(`${m[2]}${where ? ` (${where})` : ''}${errorNext ? ` — ${errorNext}` : ''}`);
  }
  return out;
}

if (run(process.execPath, ['scripts/gen-proto.mjs']) !== 0) problems.push('proto generation failed');
if (want('unit') || want('typecheck')) {
  console.log('\n=== typecheck ===');
  if (run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json']) !== 0) {
    failed += 1;
    problems.push('typecheck failed');
  } else passed += 1;
}
if (want('unit')) nodeSuite('unit', files(join(root, 'test/unit')), 2);
if (want('integration')) nodeSuite('integration', files(join(root, 'test/integration')), 1);
if (want('integration') || want('e2e')) nodeSuite('e2e', files(join(root, 'test/e2e')), 1);
if (want('chaos')) nodeSuite('chaos', files(join(root, 'test/chaos')), 1);
if (want('browser')) nodeSuite('browser', files(join(root, 'test/browser')), 1);
if (want('frontdoor')) nodeSuite('frontdoor', files(join(root, 'test/frontdoor')), 1);
// The cluster form's short form: in the default run, so CI attacks the cluster's guarantees too.
const CLUSTER_SHORT = ['netns-teardown.test.ts', 'kafka-cluster.test.ts', 'clickhouse-cluster.test.ts'];
if (only.includes('cluster')) nodeSuite('cluster', files(join(root, 'test/cluster')), 1);
else if (want('cluster-short')) {
  const missing = clusterPrerequisites();
  if (missing) {
    // Not a silent skip: the run fails and says why (`npm test -- unit integration …` runs the rest).
    failed += 1;
    problems.push(`cluster-short: not run: ${missing}`);
  } else nodeSuite('cluster-short', files(join(root, 'test/cluster')).filter((f) => CLUSTER_SHORT.some((n) => f.endsWith(`/${n}`))), 1);
}

function clusterPrerequisites() {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'needs root (network namespaces)';
  for (const [cmd, args] of [['ip', ['-V']], ['nft', ['--version']]]) {
    if (spawnSync(cmd, args, { stdio: 'ignore' }).status !== 0) return `needs \`${cmd}\` (Debian: iproute2, nftables)`;
  }
  // Where src/stack/clickhouse-server.ts looks for the server (Debian's 18.16 has no `--version`).
  const servers = ['/usr/sbin/clickhouse-server', '/usr/bin/clickhouse-server', '/usr/bin/clickhouse', '/usr/local/bin/clickhouse'];
  if (!servers.some((p) => existsSync(p))) return 'needs clickhouse-server (Debian: clickhouse-server)';
  return undefined;
}
if (want('flink')) {
  console.log('\n=== flink (mvn verify) ===');
  const r = timed('flink', () => spawnSync('mvn', ['-B', '-q', '-f', 'flink/pom.xml', 'verify'], { cwd: root, stdio: 'inherit' }));
  const reports = join(root, 'flink/target/surefire-reports');
  let p = 0;
  let f = 0;
  if (existsSync(reports)) {
    for (const name of readdirSync(reports).filter((n) => n.endsWith('.xml'))) {
      const head = readFileSync(join(reports, name), 'utf8').slice(0, 2000);
      const suite = /<testsuite\b[^>]*>/.exec(head)?.[0] ?? '';
      const attr = (a) => Number(new RegExp(`\\b${a}="(\\d+)"`).exec(suite)?.[1] ?? 0);
      const bad = attr('failures') + attr('errors');
      if (bad > 0) {
        const all = readFileSync(join(reports, name), 'utf8');
        for (const m of all.matchAll(/<testcase\b[^>]*?name="([^"]*)"[^>]*?classname="([^"]*)"[^>]*>\s*<(failure|error)\b[^>]*?(?:message="([^"]*)")?/g)) {
          failures.push(`flink: ${m[2]}.${m[1]} — ${(m[4] ?? m[3]).slice(0, 200)}`);
        }
      }
      p += attr('tests') - bad - attr('skipped');
      f += bad;
    }
  }
  passed += p;
  failed += f;
  if (r.status !== 0 && f === 0) {
    failed += 1;
    problems.push(`flink: mvn exited ${r.status}`);
  }
}
console.log(`\ntimings: ${timings.join(', ')}; in all ${Math.round((Date.now() - startedAt) / 1000)} s`);
if (failures.length) console.log(`\nfailed tests:\n  - ${failures.slice(0, 30).join('\n  - ')}`);
if (problems.length) console.log(`\nproblems:\n  - ${problems.join('\n  - ')}`);
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed > 0 || problems.length ? 1 : 0);
