// The offline list of the most common breached passwords (src/accounts/common-passwords/):
// lowercase, byte-sorted, one per line, gzip. Looked up by binary search over the decompressed
// buffer (about 750 kB), so no 100,000-entry Set lives in the heap. Loaded on first use only.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';

const LIST_FILE = path.join(import.meta.dirname, 'common-passwords', 'top-100k.txt.gz');
const NEWLINE = 0x0a;

let loading: Promise<Buffer> | null = null;

function list(): Promise<Buffer> {
  loading ??= readFile(LIST_FILE).then((gz) => gunzipSync(gz));
  // A failed read is retried at the next call rather than cached as a failure.
  loading.catch(() => (loading = null));
  return loading;
}

/** The line holding byte `at`: its start and end (exclusive of the newline). */
function lineAround(buf: Buffer, at: number): [number, number] {
  let start = at;
  while (start > 0 && buf[start - 1] !== NEWLINE) start--;
  let end = at;
  while (end < buf.length && buf[end] !== NEWLINE) end++;
  return [start, end];
}

/** Whether the sorted newline-separated `buf` holds `needle` as a whole line. */
export function sortedLinesInclude(buf: Buffer, needle: Buffer): boolean {
  let lo = 0;
  let hi = buf.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const [start, end] = lineAround(buf, mid);
    const order = Buffer.compare(needle, buf.subarray(start, end));
    if (order === 0) return true;
    if (order < 0) hi = start;
    else lo = end + 1;
  }
  return false;
}

/** Whether the password (compared without case) is one of the 100,000 most common ones. */
export async function isCommonPassword(password: string): Promise<boolean> {
  if (password.length === 0 || password.includes('\n')) return false;
  return sortedLinesInclude(await list(), Buffer.from(password.toLowerCase(), 'utf8'));
}
