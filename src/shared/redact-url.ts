// Credentials in service URLs (REDIS_URL, CLICKHOUSE_URL) never reach a log line, an error
// message or a printed summary: the password becomes ***, the rest stays for diagnosis.
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) {
      u.password = '***';
      return u.toString();
    }
  } catch { /* not a URL: handled below */ }
  // Malformed, or credentials where the parser saw none: hide all that precedes the last '@'.
  const at = url.lastIndexOf('@');
  if (at < 0) return url;
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url)?.[0] ?? '';
  return `${scheme}***${url.slice(at)}`;
}
