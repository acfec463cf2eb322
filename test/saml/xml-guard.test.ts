// The shared XML guard both SAML roles run before any parser: the shape limits (nesting depth and
// element count) refuse deep and wide bombs in one linear scan, fast, also after DEFLATE
// inflation; real messages, the largest realistic ones included, pass; and the scan cannot be
// fooled by quotes, comments, CDATA or stray end tags. Characters XML forbids are refused too.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateRawSync } from 'node:zlib';
import { MESSAGE_LIMITS, METADATA_LIMITS, MAX_METADATA_BYTES, decodePostMessage, decodeRedirectMessage, guardXml } from '../../src/saml/xml-guard.ts';
import { forgeResponse, type ForgeKey } from '../connectors/fixtures/saml/forge.ts';
import { deepMessage, wideMessage } from '../connectors/fixtures/saml/bombs.ts';
import { generateSelfSigned } from '../../src/saml-idp/signing-key.ts';

const bytes = (xml: string) => Buffer.from(xml, 'utf8');

/** Milliseconds `fn` takes (the best of three, so a stray GC pause is not the guard's). */
function timed<T>(fn: () => T): { result: T; ms: number } {
  let best = Infinity;
  let result!: T;
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    result = fn();
    best = Math.min(best, performance.now() - started);
  }
  return { result, ms: best };
}

describe('XML guard: document shape', () => {
  test('a 25,000-deep payload with a fake Signature block is refused for its depth in < 50 ms (POST and inflated Redirect)', () => {
    const xml = deepMessage(25_000);
    assert.ok(xml.length < 256 * 1024, 'within the size limit: only the shape can refuse it');
    const post = timed(() => decodePostMessage(bytes(xml).toString('base64')));
    assert.deepEqual(post.result, { ok: false, reason: 'too_deep', detail: `too deep: elements nested more than ${MESSAGE_LIMITS.maxDepth} levels` });
    assert.ok(post.ms < 50, `refused in ${post.ms.toFixed(1)} ms`);

    // The HTTP-Redirect binding: well under a kilobyte on the wire, the same shape once inflated.
    const deflated = deflateRawSync(bytes(xml)).toString('base64');
    assert.ok(deflated.length < 1024, `${deflated.length} base64 characters`);
    const redirect = timed(() => decodeRedirectMessage(deflated));
    assert.equal(redirect.result.ok, false);
    assert.equal(!redirect.result.ok && redirect.result.reason, 'too_deep');
    assert.ok(redirect.ms < 50, `refused in ${redirect.ms.toFixed(1)} ms`);
  });

  test('an element-count bomb (wide, not deep) is refused in < 50 ms', () => {
    const xml = wideMessage(60_000);
    assert.ok(xml.length < 256 * 1024);
    const { result, ms } = timed(() => guardXml(bytes(xml)));
    assert.deepEqual(result, { ok: false, reason: 'too_many_elements', detail: `too many elements: more than ${MESSAGE_LIMITS.maxElements}` });
    assert.ok(ms < 50, `refused in ${ms.toFixed(1)} ms`);
  });

  test('the limits themselves: depth 64 and 5,000 elements pass, one more is refused', () => {
    const nested = (depth: number) => `${'<a>'.repeat(depth)}${'</a>'.repeat(depth)}`;
    assert.equal(guardXml(bytes(nested(MESSAGE_LIMITS.maxDepth))).ok, true);
    assert.equal((guardXml(bytes(nested(MESSAGE_LIMITS.maxDepth + 1))) as { reason: string }).reason, 'too_deep');
    assert.equal(guardXml(bytes(`<r>${'<a/>'.repeat(MESSAGE_LIMITS.maxElements - 1)}</r>`)).ok, true);
    assert.equal((guardXml(bytes(`<r>${'<a/>'.repeat(MESSAGE_LIMITS.maxElements)}</r>`)) as { reason: string }).reason, 'too_many_elements');
    // Metadata (a larger size limit) gets the metadata bounds.
    const aggregate = `<r>${'<a/>'.repeat(20_000)}</r>`;
    assert.equal(guardXml(bytes(aggregate), MAX_METADATA_BYTES).ok, true);
    assert.equal((guardXml(bytes(aggregate)) as { reason: string }).reason, 'too_many_elements');
    assert.equal((guardXml(bytes(`<r>${'<a/>'.repeat(METADATA_LIMITS.maxElements)}</r>`), MAX_METADATA_BYTES) as { reason: string }).reason, 'too_many_elements');
  });

  test('a realistic large response passes: 1,015 group values (the most an AD token holds) and many attributes, signed twice', async () => {
    const material = await generateSelfSigned('guard-test-idp');
    const key: ForgeKey = { privateKeyPem: material.privateKeyPem, certificatePem: material.certificatePem };
    const groups = Array.from({ length: 1015 }, (_, i) => `CN=Group ${i},OU=Groups,OU=Corp,DC=corp,DC=example,DC=org`);
    const attributes: Record<string, string[]> = { memberOf: groups, mail: ['alice@example.org'], displayName: ['Alice Anderson'] };
    for (let i = 0; i < 40; i++) attributes[`urn:oid:1.3.6.1.4.1.5923.1.1.1.${i}`] = [`value-${i}-a`, `value-${i}-b`];
    const samlResponse = forgeResponse({ issuer: 'https://idp.example/', audience: 'https://sp.example/', recipient: 'https://sp.example/acs', attributes, sign: { response: true, assertion: true } }, key);
    const xml = Buffer.from(samlResponse, 'base64').toString('utf8');
    const elements = xml.match(/<[A-Za-z]/g)!.length;
    assert.ok(elements > 1100 && elements < MESSAGE_LIMITS.maxElements / 4, `${elements} elements, a quarter of the limit at most`);
    const { result, ms } = timed(() => decodePostMessage(samlResponse));
    assert.equal(result.ok, true, JSON.stringify(result).slice(0, 200));
    assert.ok(ms < 50, `${ms.toFixed(1)} ms`);
    // And the same, deflated as the Redirect binding carries messages.
    assert.equal(decodeRedirectMessage(deflateRawSync(Buffer.from(xml)).toString('base64')).ok, true);
  });

  test('the scan reads tags as XML does: quotes, comments and CDATA hide nothing, stray end tags are refused', () => {
    const ok = (xml: string) => assert.equal(guardXml(bytes(xml)).ok, true, xml.slice(0, 80));
    const refusedAs = (xml: string, reason: string) => assert.equal((guardXml(bytes(xml)) as { reason?: string }).reason, reason, xml.slice(0, 80));
    ok(`<?xml version="1.0" encoding="UTF-8"?>\n<r a="x>y" b='</q>' c="/"><!-- <a><a> --><![CDATA[<b><b></b>]]><s/><t x="1" /></r>\n`);
    ok(`\uFEFF<r><n:a xmlns:n="urn:x">text &amp; &#233; &#x1F600;</n:a ></r>`);
    // Depth hidden behind `>` in attribute values still counts.
    refusedAs(`<r>${'<a x=">">'.repeat(100)}${'</a>'.repeat(100)}</r>`, 'too_deep');
    // Stray end tags cannot lower the count: the names must match.
    refusedAs(`<r>${'<a></b>'.repeat(100)}</r>`, 'malformed');
    refusedAs('<r><a></r>', 'malformed');
    refusedAs('<r><a>', 'malformed');
    refusedAs('<r><!-- never closed </r>', 'malformed');
    refusedAs('<r><![CDATA[ never closed </r>', 'malformed');
    refusedAs('<r a="never closed></r>', 'malformed');
  });

  test('characters XML does not allow: NUL, control characters and references to them; invalid UTF-8', () => {
    const refusal = (input: Uint8Array) => guardXml(input) as { ok: boolean; reason?: string; detail?: string };
    assert.equal(refusal(bytes('<r>a\u0000b</r>')).detail, 'malformed: NUL character');
    assert.equal(refusal(bytes('<r>a\u0001b</r>')).detail, 'malformed: a control character');
    for (const ref of ['&#0;', '&#x0;', '&#00000;', '&#x1b;', '&#xD800;', '&#xFFFE;', '&#1114112;']) {
      assert.equal(refusal(bytes(`<r a="${ref}">x</r>`)).detail, 'malformed: a character reference to a character XML does not allow', ref);
    }
    assert.equal(refusal(Buffer.concat([bytes('<r>'), Buffer.from([0xc3, 0x28, 0xff]), bytes('</r>')])).detail, 'malformed: not UTF-8 text');
    // Base64 that is not base64 at all (a NUL in the form value).
    assert.equal((decodePostMessage('PHI+\u0000PC9yPg==') as { reason?: string }).reason, 'malformed');
    // Tab, newline and carriage return are fine, raw or as references.
    assert.equal(guardXml(bytes('<r a="&#9;&#10;&#13;">\t\r\n</r>')).ok, true);
  });

  test('the scan is linear: 256 kB of tags of any shape are judged in a few milliseconds', () => {
    for (const xml of [`<r>${'<a b="c"/>'.repeat(20_000)}</r>`, `<r>${'x'.repeat(250_000)}</r>`, `<r>${'<!-- c -->'.repeat(25_000)}</r>`, `<${'n'.repeat(250_000)}/>`]) {
      const { ms } = timed(() => guardXml(bytes(xml)));
      assert.ok(ms < 50, `${ms.toFixed(1)} ms for ${xml.slice(0, 30)}...`);
    }
  });
});
