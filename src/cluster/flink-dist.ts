// The Flink standalone cluster's jars, fetched through Maven into a cache dir the way the
// Kafka broker's are (kafka-dist.ts): Maven Central does not serve `flink-dist`, but
// `flink-runtime` holds the JobManager and TaskManager entry points, `flink-runtime-web` the
// web UI and jar upload/run handlers, `flink-clients` the program runner they use, and the
// RocksDB state backend must sit on the cluster's classpath (org.apache.flink.* is always
// loaded parent-first). Logging is log4j2 through `log4j-slf4j-impl`: Flink's own tree
// resolves slf4j-api 1.7.x, which cannot see the slf4j2 binding. The version is the job's
// own (flink/pom.xml), so the job jar and the cluster never disagree.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../shared/logger.ts';
import { ensureMavenClasspath, resolutionPom } from '../stack/kafka-dist.ts';

const LOG4J_VERSION = '2.24.3';

export interface FlinkDist {
  readonly version: string;
  /** `<cacheDir>/flink-<version>` */
  readonly home: string;
  readonly libsDir: string;
  /** Java classpath: `<libsDir>/*` */
  readonly classpath: string;
}

/** `<flink.version>` of flink/pom.xml: the cluster runs what the job was built against. */
export function flinkVersionOf(repoRoot: string): string {
  const pom = readFileSync(join(repoRoot, 'flink', 'pom.xml'), 'utf8');
  const m = /<flink\.version>([^<]+)<\/flink\.version>/.exec(pom);
  if (!m) throw new Error(`no <flink.version> in ${join(repoRoot, 'flink', 'pom.xml')}`);
  return m[1]!.trim();
}

export function flinkDistPaths(cacheDir: string, version: string): FlinkDist {
  const home = join(cacheDir, `flink-${version}`);
  const libsDir = join(home, 'lib');
  return { version, home, libsDir, classpath: join(libsDir, '*') };
}

/** The pom whose runtime dependency tree is a JobManager/TaskManager classpath. */
export function flinkDistPom(version: string): string {
  return resolutionPom({
    artifactId: 'flink-dist', version, generatedBy: 'src/cluster/flink-dist.ts', what: "the cluster's jars",
    deps: [
      ['org.apache.flink', 'flink-runtime', version],
      ['org.apache.flink', 'flink-runtime-web', version],
      ['org.apache.flink', 'flink-clients', version],
      ['org.apache.flink', 'flink-streaming-java', version],
      ['org.apache.flink', 'flink-statebackend-rocksdb', version],
      ['org.apache.logging.log4j', 'log4j-slf4j-impl', LOG4J_VERSION],
      ['org.apache.logging.log4j', 'log4j-api', LOG4J_VERSION],
      ['org.apache.logging.log4j', 'log4j-core', LOG4J_VERSION],
    ],
  });
}

function markerContent(version: string): string {
  return `flink=${version}\nlog4j=${LOG4J_VERSION}\n`;
}

/** Make sure the cluster jars are on disk (first run: Maven into a scratch dir, renamed into place). */
export async function ensureFlinkDist(opts: { cacheDir: string; version: string; logger?: Logger; timeoutMs?: number }): Promise<FlinkDist> {
  const dist = flinkDistPaths(opts.cacheDir, opts.version);
  await ensureMavenClasspath({
    home: dist.home, libsDir: dist.libsDir, pom: flinkDistPom(opts.version), marker: markerContent(opts.version),
    timeoutMs: opts.timeoutMs, logger: opts.logger, label: 'Flink cluster jars', version: opts.version,
    what: 'the Flink cluster jars', versionKey: '<flink.version> in flink/pom.xml',
  });
  return dist;
}
