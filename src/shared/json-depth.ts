// JSON.parse has no depth limit: a body of nested brackets within the size limit builds
// hundreds of thousands of objects before anything can refuse it. This scan refuses it
// first, chunk by chunk as the body arrives, stopping at the first bracket too deep, so
// such a body costs its first chunk, not a parse (nor the rest of the upload).

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/** Nesting of JSON text fed in pieces; brackets inside strings do not count. */
export class JsonDepthScanner {
  private depth = 0;
  private inString = false;
  private escaped = false;

  constructor(private readonly max: number) {}

  /**
   * Feeds the next piece of UTF-8 bytes; true once the input nests deeper than `max`. A
   * piece may end inside a character: the bytes that matter here are ASCII, and no
   * multi-byte sequence contains one.
   */
  push(bytes: Uint8Array): boolean {
    let { depth, inString, escaped } = this;
    for (let i = 0; i < bytes.length; i++) {
      const c = bytes[i]!;
      if (inString) {
        if (escaped) escaped = false;
        else if (c === BACKSLASH) escaped = true;
        else if (c === QUOTE) inString = false;
      } else if (c === QUOTE) {
        inString = true;
      } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        if (++depth > this.max) return true;
      } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        depth--;
      }
    }
    this.depth = depth;
    this.inString = inString;
    this.escaped = escaped;
    return false;
  }
}
