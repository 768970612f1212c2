// Tests start a throwaway ClickHouse server through the launcher's own helper.
export * from '../../src/stack/clickhouse-server.ts';
