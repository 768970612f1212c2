// What the engines the launcher starts (the Flink job JVM, Kafka brokers, a ClickHouse server)
// may inherit from its environment. None of them needs a secret (their settings are flags and
// files), and each exposes ports to whoever reaches them: signing keys, Redis/ClickHouse URLs
// with passwords, the IP-hash key or cloud credentials in the launcher's environment stay out.
const ALLOWED = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ', 'TMPDIR', 'JAVA_HOME', 'JAVA_TOOL_OPTIONS', 'JDK_JAVA_OPTIONS'];

/** An allow-list of `base` (default: this process's environment). */
export function engineEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const k of ALLOWED) if (base[k] !== undefined) env[k] = base[k];
  return env;
}
