// `adclick` command line. Parses the command, then hands over to the part that owns it;
// each part is imported lazily so `adclick sign` does not load Kafka or ClickHouse.
const USAGE = `adclick — real-time exactly-once ad click aggregation

usage: adclick <command> [options]

  up [--demo [--no-traffic|--traffic-rate=N]]
                           start the whole local pipeline in the foreground (Ctrl-C stops it);
                           nothing is sent and no key minted unless --demo (npm start): then a
                           demo API key and light traffic (20 clicks/s, 30 min) on reserved ids
  down                     stop a stack started by \`adclick up\` elsewhere
  status                   show each part of a running stack
  cluster up|down|status   the cluster form, Kafka tier: 3 KRaft nodes, each in its own network
                           namespace and address (ADCLICK_CLUSTER_SUBNET), topics replicated 3x
  savepoint [--stop]       savepoint of the running Flink job into <data dir>/flink/savepoints;
                           --stop: stop-with-savepoint, then \`down\`, upgrade, \`up\` resumes from it
  simulate [options]       send realistic signed traffic and write a ground-truth ledger
                           (--rate N/s --duration 60s|--count N --batch N --seed N ...; --help)
  verify --ledger FILE... [--wait D] [--key ADV=KEY]
                           compare simulator ledgers with what the query API serves, every
                           (campaign|ad, window) at 1m/5m/1h; exit 1 on any difference
  sign [--key-id K --secret S | --secret-file F] '<click json>'
                           sign a click (JSON on stdin if no argument)
  chaos --all | --scenario <name>... [--short] [--clicks N] [--rate N] [--json]
                           fault injection on a throwaway stack; compares counts with the ledger
  keys create --advertiser <id>   create an advertiser API key (printed once, last line)
  keys revoke <api_key> | - | --key-file F   revoke an API key (- or none: read it from stdin)
  backfill --from <time> --to <time>
                           recompute 1m/5m/1h aggregates of the closed windows inside the range
                           from raw clicks (inside ClickHouse), replacing the streaming result
  reconcile --from <time> --to <time>
                           per-window differences between served counts and a recount from raw
                           clicks (exit 1 when any differ); <time>: ISO 8601 or epoch ms
  help                     this text

Configuration is read from the environment; see the README's configuration table.
`;

const [command, ...rest] = process.argv.slice(2);

async function main(): Promise<number> {
  switch (command) {
    case 'up':
      return (await import('./stack/cli-commands.ts')).upCommand({ argv: rest });
    case 'down':
      return (await import('./stack/cli-commands.ts')).downCommand();
    case 'status':
      return (await import('./stack/cli-commands.ts')).statusCommand();
    case 'cluster':
      return (await import('./cluster/cluster-command.ts')).runCluster(rest);
    case 'savepoint':
      return (await import('./stack/savepoint-command.ts')).runSavepoint(rest);
    case 'simulate':
      return (await import('./simulate/simulate-command.ts')).runSimulate(rest);
    case 'verify':
      return (await import('./verify/verify-command.ts')).runVerify(rest);
    case 'sign':
      return (await import('./simulate/sign-command.ts')).runSign(rest);
    case 'chaos':
      return (await import('./chaos/chaos-command.ts')).runChaos(rest);
    case 'keys':
      return (await import('./keys-command.ts')).runKeys(rest);
    case 'backfill':
    case 'reconcile':
      return (await import('./batch-command.ts')).runBatch(command, rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`adclick ${command}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
