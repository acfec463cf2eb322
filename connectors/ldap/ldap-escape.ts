// Escaping for values put into LDAP filters (RFC 4515) and DNs (RFC 4514). Every value that
// comes from a person or an upstream goes through one of these; nothing is concatenated raw.

/** Escapes a string for use as an assertion value inside a search filter. */
export function escapeFilterValue(value: string): string {
  return value.replace(/[\\*()\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Escapes a string for use as an attribute value inside a DN (one RDN value). */
export function escapeDnValue(value: string): string {
  let out = value.replace(/[\\,+"<>;=\0]/g, (c) => (c === '\0' ? '\\00' : `\\${c}`));
  if (/^[ #]/.test(out)) out = `\\${out}`;
  if (/ $/.test(out)) out = `${out.slice(0, -1)}\\ `;
  return out;
}

/** Lower-cased DN with spaces around separators removed, for set membership (cycle guards). */
export function normalizeDn(dn: string): string {
  return dn.replace(/\s*([,=+])\s*/g, '$1').toLowerCase();
}

/** The value of a DN's first RDN (`cn=Staff,ou=groups,...` -> `Staff`), unescaped. */
export function firstRdnValue(dn: string): string {
  const start = dn.indexOf('=');
  if (start < 0) return dn;
  // Collect bytes: `\hh` escapes are single bytes of a UTF-8 sequence, other characters encode as themselves.
  const bytes: number[] = [];
  for (let i = start + 1; i < dn.length; i++) {
    const c = dn[i]!;
    if (c === ',' || c === '+') break;
    if (c === '\\') {
      const hex = dn.slice(i + 1, i + 3);
      if (/^[0-9a-fA-F]{2}$/.test(hex)) {
        bytes.push(parseInt(hex, 16));
        i += 2;
        continue;
      }
      i += 1;
    }
    bytes.push(...Buffer.from(dn[i] ?? '', 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8').trim();
}

/** Formats AD's 16-byte objectGUID (little-endian first three fields) as the usual GUID string. */
export function guidToString(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw new Error('objectGUID must be 16 bytes');
  const h = (i: number) => bytes[i]!.toString(16).padStart(2, '0');
  return [
    h(3) + h(2) + h(1) + h(0),
    h(5) + h(4),
    h(7) + h(6),
    h(8) + h(9),
    h(10) + h(11) + h(12) + h(13) + h(14) + h(15),
  ].join('-');
}

/** Inverse of guidToString; null for anything that is not a GUID string. */
export function guidToBytes(guid: string): Uint8Array | null {
  const m = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i.exec(guid);
  if (!m) return null;
  const hex = (s: string) => Buffer.from(s, 'hex');
  return new Uint8Array(Buffer.concat([hex(m[1]!).reverse(), hex(m[2]!).reverse(), hex(m[3]!).reverse(), hex(m[4]!), hex(m[5]!)]));
}
