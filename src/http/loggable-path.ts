// Request paths as they may be logged or audited. Some paths carry a secret: the token of a mailed
// link (/password/reset/<token>, /email/verify/<token>) works for whoever reads it, and the
// account console's link return carries its one-time state. Those segments are redacted.
const SECRET_SEGMENT = /^(\/password\/reset\/|\/email\/verify\/|\/account\/link\/return\/)[^/]*/;

/** The path with any secret segment replaced by `<redacted>`, at most 256 characters. */
export function loggablePath(path: string): string {
  return path.replace(SECRET_SEGMENT, '$1<redacted>').slice(0, 256);
}
