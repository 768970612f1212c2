// Which ClickHouse insert errors are a refusal of the DATA (the same rows will be refused
// however often they are retried) and which are the engine's state (down, slow, busy, out
// of memory, too many parts, a missing table) that retrying outlasts. Only the first kind
// may quarantine rows; anything unrecognised is treated as transient, so an unknown error
// delays the sink but never sets rows aside.

/**
 * ClickHouse error codes that reject values, types or sizes of the inserted rows. The
 * same numbers on chdb 26.x and clickhouse-server 18.16 (codes are never renumbered).
 * BAD_ARGUMENTS (36, 18.16's code for an unknown enum element) is left out on purpose: it
 * also reports problems that are not the rows' (settings), and the sink validates enums.
 */
export const PERMANENT_REFUSAL_CODES: ReadonlyMap<number, string> = new Map([
  [6, 'CANNOT_PARSE_TEXT'],
  [25, 'CANNOT_PARSE_ESCAPE_SEQUENCE'],
  [26, 'CANNOT_PARSE_QUOTED_STRING'],
  [27, 'CANNOT_PARSE_INPUT_ASSERTION_FAILED'],
  [38, 'CANNOT_PARSE_DATE'],
  [41, 'CANNOT_PARSE_DATETIME'],
  [53, 'TYPE_MISMATCH'],
  [69, 'ARGUMENT_OUT_OF_BOUND'],
  [70, 'CANNOT_CONVERT_TYPE'],
  [72, 'CANNOT_PARSE_NUMBER'],
  [117, 'INCORRECT_DATA'],
  [131, 'TOO_LARGE_STRING_SIZE'],
  [321, 'VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE'],
  [349, 'CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN'],
  [469, 'VIOLATED_CONSTRAINT'],
  [691, 'UNKNOWN_ELEMENT_OF_ENUM'],
]);

/**
 * The ClickHouse error code of an insert failure, or null when it is not a ClickHouse
 * answer (connection refused, timeout, ...). @clickhouse/client puts it in `code` (a
 * numeric string); chdb only in the message (`Code: 469. DB::Exception: ...`).
 */
export function clickhouseErrorCode(err: unknown): number | null {
  if (!(err instanceof Error)) return null;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && /^\d+$/.test(code)) return Number(code);
  const m = /^Code: (\d+)\. DB::Exception/m.exec(err.message);
  return m ? Number(m[1]) : null;
}

/** True when ClickHouse refused the rows themselves: retrying the same rows cannot succeed. */
export function isPermanentRefusal(err: unknown): boolean {
  const code = clickhouseErrorCode(err);
  return code !== null && PERMANENT_REFUSAL_CODES.has(code);
}

/** `Code 469 (VIOLATED_CONSTRAINT): <first line of the message>`, for a dead letter's detail. */
export function refusalSummary(err: unknown): string {
  const code = clickhouseErrorCode(err);
  const message = (err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 500);
  return code === null ? message : `Code ${code} (${PERMANENT_REFUSAL_CODES.get(code) ?? 'unknown'}): ${message}`;
}
