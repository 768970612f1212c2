// A turn of the event loop between slices of CPU work (setImmediate: after the poll phase,
// so sockets and due timers are served first). Long synchronous work in the serving process
// (decoding and serialising a 50,000-record sink batch) otherwise holds the loop that
// answers /healthz, /metrics and the query API (issue 17).
export const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
