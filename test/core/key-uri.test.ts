/**
 * Key references: the scheme split, the RFC 7512-style attribute parser (whose messages must
 * never echo a value, because a `pin-value` is a secret), and the scheme registry.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createSigner,
  listKeySchemes,
  loadAdapter,
  parseKeyReference,
  parseReferenceAttributes,
  registerKeyScheme,
  type KeyAdapter,
  type KeyReference,
} from '../../src/key-uri.js';
import type { Signer } from '../../src/signer.js';

function errorOf(action: () => unknown): Error & { code?: unknown; details?: unknown } {
  try {
    action();
  } catch (error) {
    return error as Error & { code?: unknown };
  }
  throw new Error('expected the call to throw');
}

const referenceRows: Array<[string, string, string]> = [
  ['./AuthKey_ABC123DEFG.p8', 'file', './AuthKey_ABC123DEFG.p8'],
  ['/etc/keys/a.p8', 'file', '/etc/keys/a.p8'],
  ['AuthKey.p8', 'file', 'AuthKey.p8'],
  ['C:\\keys\\a.p8', 'file', 'C:\\keys\\a.p8'],
  ['c:/keys/a.p8', 'file', 'c:/keys/a.p8'],
  ['\\\\server\\share\\a.p8', 'file', '\\\\server\\share\\a.p8'],
  ['./dir:with:colons/a.p8', 'file', './dir:with:colons/a.p8'],
  [':leading-colon.p8', 'file', ':leading-colon.p8'],
  ['1abc:x', 'file', '1abc:x'],
  ['file:/etc/keys/a.p8', 'file', '/etc/keys/a.p8'],
  ['file:C:\\keys\\a.p8', 'file', 'C:\\keys\\a.p8'],
  ['FILE:./a.p8', 'file', './a.p8'],
  ['env:APPLE_KEY', 'env', 'APPLE_KEY'],
  ['Env:APPLE_KEY', 'env', 'APPLE_KEY'],
  ['awskms:alias/Apple-SIWA', 'awskms', 'alias/Apple-SIWA'],
  [
    'AWSKMS:arn:aws:kms:eu-west-1:111122223333:key/x',
    'awskms',
    'arn:aws:kms:eu-west-1:111122223333:key/x',
  ],
  [
    'gcpkms:projects/p/locations/l/keyRings/r/cryptoKeys/k',
    'gcpkms',
    'projects/p/locations/l/keyRings/r/cryptoKeys/k',
  ],
  [
    'pkcs11:token=Apple;object=siwa?pin-source=env:PIN',
    'pkcs11',
    'token=Apple;object=siwa?pin-source=env:PIN',
  ],
  ['vault+https:secret/x', 'vault+https', 'secret/x'],
];

describe('parseKeyReference', () => {
  it.each(referenceRows)('splits %s', (raw, scheme, rest) => {
    expect(parseKeyReference(raw)).toEqual({ scheme, rest, raw });
  });

  it.each([[''], ['   '], ['\n']])('rejects empty reference %j', (raw) => {
    const error = errorOf(() => parseKeyReference(raw));
    expect(error.code).toBe('ERR_KEY_REFERENCE_INVALID');
    expect(error.message).toMatch(/empty/);
  });

  it.each([['file:'], ['env:'], ['awskms:  '], ['PKCS11:']])('rejects %j with no key', (raw) => {
    const error = errorOf(() => parseKeyReference(raw));
    expect(error.code).toBe('ERR_KEY_REFERENCE_INVALID');
    expect(error.message).toContain(`"${raw.slice(0, raw.indexOf(':'))}:" names no key`);
  });

  it.each([[undefined], [42], [{ scheme: 'file' }]])('throws TypeError for %j', (raw) => {
    expect(() => parseKeyReference(raw as unknown as string)).toThrow(TypeError);
  });
});

describe('loadAdapter', () => {
  it('rejects an unknown scheme', async () => {
    const error = (await loadAdapter(parseKeyReference('vault:secret/apple')).catch(
      (caught: unknown) => caught,
    )) as Error & { code?: unknown; details?: unknown };
    expect(error.code).toBe('ERR_KEY_REFERENCE_SCHEME');
    expect(error.message).toContain('"vault:" is not supported');
    expect(error.message).toContain('file:, env:, awskms:, gcpkms:, cloudkms:, pkcs11:');
    expect(error.message).toContain('prefix a file path that contains a colon with "file:"');
    expect(error.details).toEqual({ scheme: 'vault' });
  });

  it('finds the same adapter for file and env', async () => {
    const file = await loadAdapter(parseKeyReference('./a.p8'));
    const env = await loadAdapter(parseKeyReference('env:KEY'));
    expect(file.name).toBe('pem');
    expect(env).toBe(file);
  });

  it.each([
    ['awskms:alias/x', 'aws-kms'],
    ['gcpkms:projects/p', 'gcp-kms'],
    ['cloudkms:projects/p', 'gcp-kms'],
    ['pkcs11:token=t', 'pkcs11'],
  ])('maps %s to %s', async (raw, name) => {
    expect((await loadAdapter(parseKeyReference(raw))).name).toBe(name);
  });
});

describe('registerKeyScheme', () => {
  function fakeAdapter(calls: Array<{ reference: KeyReference; options: unknown }>): KeyAdapter {
    return {
      name: 'fake',
      async createSigner(reference, options) {
        calls.push({ reference, options });
        return { keyId: `fake:${reference.rest}` } as Signer;
      },
    };
  }

  it('loads the adapter only on use', async () => {
    const calls: Array<{ reference: KeyReference; options: unknown }> = [];
    let loads = 0;
    registerKeyScheme('InHouse', async () => {
      loads += 1;
      return fakeAdapter(calls);
    });
    expect(loads).toBe(0);
    expect(listKeySchemes()).toContain('inhouse');

    const signer = await createSigner('INHOUSE:apple/siwa', { timeoutMs: 500 });
    expect(loads).toBe(1);
    expect(signer.keyId).toBe('fake:apple/siwa');
    expect(calls).toEqual([
      {
        reference: { scheme: 'inhouse', rest: 'apple/siwa', raw: 'INHOUSE:apple/siwa' },
        options: { timeoutMs: 500 },
      },
    ]);
  });

  it('replaces an earlier loader', async () => {
    registerKeyScheme('twice', async () => ({ ...fakeAdapter([]), name: 'first' }));
    registerKeyScheme('twice', async () => ({ ...fakeAdapter([]), name: 'second' }));
    expect((await loadAdapter(parseKeyReference('twice:x'))).name).toBe('second');
  });

  it.each([['c'], [''], ['1abc'], ['has space'], ['a_b'], ['x:'], [undefined]])(
    'rejects scheme %j with TypeError',
    (scheme) => {
      const loader = async () => fakeAdapter([]);
      expect(() => registerKeyScheme(scheme as unknown as string, loader)).toThrow(TypeError);
      expect(listKeySchemes()).not.toContain(String(scheme).toLowerCase());
    },
  );

  it('names the rule for a one-letter scheme', () => {
    const error = errorOf(() => registerKeyScheme('c', async () => fakeAdapter([])));
    expect(error.message).toMatch(/"c" is invalid.*at least one more letter.*drive/s);
  });

  it('rejects a loader that is not a function', () => {
    const loader = fakeAdapter([]) as unknown as () => Promise<KeyAdapter>;
    expect(() => registerKeyScheme('notfn', loader)).toThrow(TypeError);
    expect(listKeySchemes()).not.toContain('notfn');
  });

  it('keeps the registry on globalThis', () => {
    registerKeyScheme('globalcheck', async () => fakeAdapter([]));
    const store = (globalThis as Record<symbol, unknown>)[Symbol.for('kms-jwt-signer.key-schemes')];
    expect(store).toBeInstanceOf(Map);
    expect((store as Map<string, unknown>).has('globalcheck')).toBe(true);
  });
});

describe('parseReferenceAttributes', () => {
  it('splits path and query attributes', () => {
    const parsed = parseReferenceAttributes(
      'token=Apple%20Keys;object=siwa;Type=private?pin-source=file:/run/pin&module-path=/usr/lib/p.so',
      'pkcs11',
    );
    expect(Object.fromEntries(parsed.path)).toEqual({
      token: 'Apple Keys',
      object: 'siwa',
      type: 'private',
    });
    expect(Object.fromEntries(parsed.query)).toEqual({
      'pin-source': 'file:/run/pin',
      'module-path': '/usr/lib/p.so',
    });
  });

  it('percent-decodes names and values', () => {
    const parsed = parseReferenceAttributes('obj%65ct=a%3Bb%3Fc%26d%3De%25;x=%E2%82%AC', 'pkcs11');
    expect(parsed.path.get('object')).toBe('a;b?c&d=e%');
    expect(parsed.path.get('x')).toBe('€');
  });

  it('keeps "=" and "+" inside a value', () => {
    const parsed = parseReferenceAttributes('a=b=c;plus=1+2', 'pkcs11');
    expect(parsed.path.get('a')).toBe('b=c');
    expect(parsed.path.get('plus')).toBe('1+2');
  });

  it('allows empty input and empty items', () => {
    const empty = parseReferenceAttributes('', 'pkcs11');
    expect(empty.path.size + empty.query.size).toBe(0);
    const sparse = parseReferenceAttributes(';a=1;;?&b=2&', 'pkcs11');
    expect(Object.fromEntries(sparse.path)).toEqual({ a: '1' });
    expect(Object.fromEntries(sparse.query)).toEqual({ b: '2' });
  });

  it('allows one name in path and query', () => {
    const parsed = parseReferenceAttributes('id=1?id=2', 'pkcs11');
    expect(parsed.path.get('id')).toBe('1');
    expect(parsed.query.get('id')).toBe('2');
  });

  const invalidRows: Array<[string, string, RegExp]> = [
    ['repeated name', 'object=a;object=b', /attribute "object" is repeated/],
    ['repeated name in other case', 'Object=a;object=b', /attribute "object" is repeated/],
    ['repeated query name', '?pin-value=a&pin-value=b', /attribute "pin-value" is repeated/],
    ['missing "="', 'token=a;siwa', /attribute 2 has no "name=value" form/],
    ['empty name', '=siwa', /attribute 1 has no "name=value" form/],
    ['bad escape in value', 'object=a%zz', /the value of "object" has an invalid percent-escape/],
    ['truncated escape', 'object=a%4', /the value of "object" has an invalid percent-escape/],
    ['bad escape in name', 'obj%zzect=a', /attribute 1 has an invalid percent-escape/],
    ['invalid UTF-8', 'object=%C3%28', /the value of "object" has an invalid percent-escape/],
  ];

  it.each(invalidRows)('rejects %s', (_name, rest, message) => {
    const error = errorOf(() => parseReferenceAttributes(rest, 'pkcs11'));
    expect(error.code).toBe('ERR_KEY_REFERENCE_INVALID');
    expect(error.message).toMatch(message);
    expect(error.message).toMatch(/^Invalid pkcs11 key reference: /);
    expect(error.details).toEqual({ adapter: 'pkcs11' });
  });
});

describe('parseReferenceAttributes secrecy', () => {
  // A secret value made distinctive enough that no message could contain it by chance.
  const secret = fc
    .string({ unit: fc.constantFrom(...'ABCDEFGHJKLMNPQRSTUVWXYZ23456789'), minLength: 8 })
    .map((text) => `Zq${text}`);

  const malformed = fc.oneof(
    secret.map((value) => `pin-value=${value}%zz`),
    secret.map((value) => `pin-value=${value}%4`),
    secret.map((value) => `pin-value=${value}%C3%28`),
    secret.map((value) => `pin-value=${value};pin-value=${value}`),
    secret.map((value) => `token=t?pin-value=${value}&pin-value=${value}`),
    secret.map((value) => `token=t?pin-value=${value}&${value}`),
    secret.map((value) => `pin-value=${value};=${value}`),
    secret.map((value) => `${value}`),
    secret.map((value) => `pin-value=${encodeURIComponent(value)};object=%zz`),
  );

  it('never puts a value in an error', () => {
    fc.assert(
      fc.property(malformed, (rest) => {
        const value = /Zq[A-Z0-9]+/.exec(rest)![0];
        const error = errorOf(() => parseReferenceAttributes(rest, 'pkcs11'));
        expect(error.code).toBe('ERR_KEY_REFERENCE_INVALID');
        const reported = `${error.message} ${JSON.stringify(error.details)} ${String(error.cause)}`;
        expect(reported).not.toContain(value);
        expect(reported).not.toContain(value.slice(0, 6));
      }),
      { numRuns: 2_000 },
    );
  });
});
