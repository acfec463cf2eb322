// How an upstream says it authenticated someone (`amr`, `acr`), bounded before it enters an
// UpstreamIdentity: the values ride in login sessions (jsonb, which refuses NUL) and ID tokens,
// and may decide whether a local second factor is skipped.

export const AMR_MAX_VALUES = 16;
export const AMR_MAX_LENGTH = 64;
export const ACR_MAX_LENGTH = 256;

// Control characters (NUL included) never belong in a method name or a class URI.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const acceptable = (v: unknown, max: number): v is string => typeof v === 'string' && v.length > 0 && v.length <= max && !CONTROL.test(v);

/**
 * The strings of an `amr` array (each 1..64 characters, no control characters; other entries
 * are ignored), the first 16 of them, without repeats; undefined when none remain or the claim
 * is not an array.
 */
export function upstreamAmr(value: unknown): string[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const values = [...new Set(value.filter((v) => acceptable(v, AMR_MAX_LENGTH)))].slice(0, AMR_MAX_VALUES);
  return values.length ? values : undefined;
}

/** An `acr` string of 1..256 characters without control characters, or undefined. */
export function upstreamAcr(value: unknown): string | undefined {
  return acceptable(value, ACR_MAX_LENGTH) ? value : undefined;
}
