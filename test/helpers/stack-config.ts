// Configuration of a throwaway real stack for tests: free ports, a temp data dir, fast
// checkpoints, small heaps, limits out of the way of test traffic.
import { loadConfig, type Config } from '../../src/shared/config.ts';
import { freePort } from './kafka.ts';

export async function testStackConfig(dataDir: string, overrides: Partial<Config> = {}): Promise<Config> {
  const ports = {
    gatewayPort: await freePort(), queryPort: await freePort(), adminPort: await freePort(),
    kafkaPort: await freePort(), kafkaControllerPort: await freePort(), flinkUiPort: await freePort(),
  };
  return loadConfig(process.env, {
    ...ports,
    kafkaBrokers: `127.0.0.1:${ports.kafkaPort}`,
    dataDir,
    clickhouseUrl: '',
    rateLimitPerSec: 1_000_000,
    rateLimitBurst: 1_000_000,
    queryRateLimitPerSec: 100_000,
    queryRateLimitBurst: 100_000,
    flinkCheckpointIntervalMs: 2000,
    flinkHeap: '1g',
    kafkaHeapMax: '512m',
    logLevel: 'warn',
    ...overrides,
  });
}
