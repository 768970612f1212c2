// Admin-client access for the launcher: readiness probe and topic creation.
import kafkaJavascript from '@confluentinc/kafka-javascript';
import type { KafkaJS } from '@confluentinc/kafka-javascript';

const { Kafka, logLevel } = kafkaJavascript.KafkaJS;

export type KafkaAdmin = KafkaJS.Admin;

export function createAdmin(bootstrap: string, clientId = 'adclick-stack'): KafkaAdmin {
  return new Kafka({
    kafkaJS: { brokers: bootstrap.split(','), clientId, logLevel: logLevel.NOTHING, connectionTimeout: 3000, requestTimeout: 10_000 },
  }).admin();
}

/** Connect, run `fn`, always disconnect. */
export async function withAdmin<T>(bootstrap: string, fn: (admin: KafkaAdmin) => Promise<T>): Promise<T> {
  const admin = createAdmin(bootstrap);
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/**
 * True when the broker answers a metadata request within `timeoutMs`. librdkafka retries
 * connections on its own, so the request timeout bounds the wait.
 */
export async function kafkaAnswersMetadata(bootstrap: string, timeoutMs = 3000): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const admin = createAdmin(bootstrap, 'adclick-stack-probe');
  try {
    const attempt = (async () => {
      await admin.connect();
      await admin.listTopics({ timeout: timeoutMs });
      return true;
    })();
    attempt.catch(() => undefined);
    return await Promise.race([attempt, new Promise<boolean>((r) => { timer = setTimeout(() => r(false), timeoutMs + 500); })]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    await admin.disconnect().catch(() => undefined);
  }
}
