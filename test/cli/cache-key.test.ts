// The `--cache` key: it changes with the key reference, yet holds no PIN and no hash of one.
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cacheKeyFor, normaliseKeyReference } from '../../src/cli/cache-key.js';

const values = { teamId: 'DEF123GHIJ', clientId: 'com.example.web', keyId: 'ABC123DEFG' };
const hsm = 'pkcs11:token=apple;object=siwa;id=%01';
const modulePath = 'module-path=/usr/lib/softhsm/libsofthsm2.so';

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

describe('cacheKeyFor', () => {
  it('differs for another key file', () => {
    const first = cacheKeyFor('client-secret', values, '/keys/AuthKey_ABC123DEFG.p8');
    const second = cacheKeyFor('client-secret', values, '/keys/new/AuthKey_ABC123DEFG.p8');
    expect(first).not.toBe(second);
  });

  it('differs for another KMS key', () => {
    const first = cacheKeyFor('client-secret', values, 'awskms:alias/apple-siwa');
    const second = cacheKeyFor('client-secret', values, 'awskms:alias/apple-siwa-2');
    expect(first).not.toBe(second);
  });

  it('differs for another field value', () => {
    const first = cacheKeyFor('client-secret', values, hsm);
    const second = cacheKeyFor('client-secret', { ...values, teamId: 'XYZ123GHIJ' }, hsm);
    expect(first).not.toBe(second);
  });

  it('ignores the PIN of a pkcs11 reference', () => {
    const withPin = `${hsm}?${modulePath}&pin-value=1234`;
    const withoutPin = `${hsm}?${modulePath}`;
    expect(cacheKeyFor('client-secret', values, withPin)).toBe(
      cacheKeyFor('client-secret', values, withoutPin),
    );
  });

  it('holds no PIN and no hash of one', () => {
    const reference = `${hsm}?${modulePath}&pin-value=1234`;
    const key = cacheKeyFor('client-secret', values, reference);
    expect(key).not.toContain('1234');
    expect(key).not.toContain('pin-value');
    expect(key).not.toContain(sha256(reference));
    expect(key).not.toContain(sha256('1234'));
    expect(key).toContain(`key-sha256:${sha256(`${hsm}?${modulePath}`)}`);
  });
});

describe('normaliseKeyReference', () => {
  it('makes a key file path absolute', () => {
    const absolute = `file:${resolve('AuthKey_ABC123DEFG.p8')}`;
    expect(normaliseKeyReference('AuthKey_ABC123DEFG.p8')).toBe(absolute);
    expect(normaliseKeyReference('./AuthKey_ABC123DEFG.p8')).toBe(absolute);
    expect(normaliseKeyReference('file:AuthKey_ABC123DEFG.p8')).toBe(absolute);
  });

  it.each([
    ['pin-value', `${hsm}?pin-value=1234`, hsm],
    ['pin-value after module-path', `${hsm}?${modulePath}&pin-value=1234`, `${hsm}?${modulePath}`],
    ['encoded pin-value name', `${hsm}?pin%2Dvalue=1234`, hsm],
    ['upper-case pin-value name', `${hsm}?PIN-VALUE=1234`, hsm],
    ['pin-value in the path part', `${hsm};pin-value=1234`, hsm],
    ['pin-value after a second "?"', `${hsm}?${modulePath}?pin-value=1234`, hsm],
    ['pin-source', `${hsm}?pin-source=file:/run/pin&${modulePath}`, `${hsm}?${modulePath}`],
    ['vendor attribute', `${hsm}?x-vendor-secret=abc&${modulePath}`, `${hsm}?${modulePath}`],
  ])('drops %s from pkcs11', (_name, reference, expected) => {
    expect(normaliseKeyReference(reference)).toBe(expected);
  });

  it('keeps an object label that mentions a PIN', () => {
    const reference = 'pkcs11:token=apple;object=pin-value-key';
    expect(normaliseKeyReference(reference)).toBe(reference);
  });

  it('lower-cases the scheme of other references', () => {
    expect(normaliseKeyReference('AWSKMS:alias/apple-siwa')).toBe('awskms:alias/apple-siwa');
    expect(normaliseKeyReference('env:APPLE_KEY')).toBe('env:APPLE_KEY');
  });
});
