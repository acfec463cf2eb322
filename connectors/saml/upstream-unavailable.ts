/** Thrown when the IdP cannot be reached (metadata fetch): the broker shows "unavailable right now". */
export class UpstreamUnavailableError extends Error {
  constructor(what: string, detail: string, options?: { cause?: unknown }) {
    super(`${what} is unavailable: ${detail}`, options);
    this.name = 'UpstreamUnavailableError';
  }
}
