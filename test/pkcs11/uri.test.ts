// The RFC 7512 `pkcs11:` URI parser and the module and PIN sources, without any module loaded.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveModulePath, resolvePin } from '../../adapters/pkcs11/config.js';
import { assertUriSelectsObject } from '../../adapters/pkcs11/connect.js';
import {
  encodeQueryValue,
  encodeUriId,
  encodeUriValue,
  formatPathAttributes,
  parsePkcs11Uri,
} from '../../adapters/pkcs11/uri.js';
import type { SignerEvent } from '../../src/signer.js';

const folder = mkdtempSync(join(tmpdir(), 'kms-jwt-pkcs11-uri-'));
afterAll(() => rmSync(folder, { recursive: true, force: true }));

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

describe('parsePkcs11Uri', () => {
  it('reads every path and query attribute', () => {
    const uri = parsePkcs11Uri(
      'pkcs11:token=Apple%20Keys;manufacturer=SoftHSM%20project;model=SoftHSM%20v2;' +
        'serial=2b51e8021075cf96;slot-id=276156310;slot-description=Slot%20one;' +
        'slot-manufacturer=Vendor;library-manufacturer=Lib%20Vendor;' +
        'library-description=Lib%20text;library-version=2.6;object=siwa;id=%01%a2;type=private' +
        '?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/pin',
    );
    expect(uri.filter).toEqual({
      token: 'Apple Keys',
      manufacturer: 'SoftHSM project',
      model: 'SoftHSM v2',
      serial: '2b51e8021075cf96',
      slotId: 276156310,
      slotDescription: 'Slot one',
      slotManufacturer: 'Vendor',
      libraryManufacturer: 'Lib Vendor',
      libraryDescription: 'Lib text',
      libraryVersion: { major: 2, minor: 6 },
    });
    expect(uri.object).toBe('siwa');
    expect(uri.id).toEqual(Buffer.from([0x01, 0xa2]));
    expect(uri.type).toBe('private');
    expect(uri.modulePath).toBe('/usr/lib/softhsm/libsofthsm2.so');
    expect(uri.pinSource).toBe('file:/run/secrets/pin');
    expect(uri.pinValue).toBeUndefined();
    expect(uri.unknownPathAttributes).toEqual([]);
  });

  it('reads pin-value', () => {
    expect(parsePkcs11Uri('pkcs11:object=a?pin-value=12%2634').pinValue).toBe('12&34');
  });

  it('decodes id bytes that are not UTF-8', () => {
    expect(parsePkcs11Uri('pkcs11:id=%ff%00%FE').id).toEqual(Buffer.from([0xff, 0x00, 0xfe]));
    expect(parsePkcs11Uri('pkcs11:id=AB').id).toEqual(Buffer.from('AB'));
  });

  it('accepts each object type', () => {
    for (const type of ['cert', 'data', 'private', 'public', 'secret-key']) {
      expect(parsePkcs11Uri(`pkcs11:object=a;type=${type}`).type).toBe(type);
    }
  });

  it('collects unknown path attributes', () => {
    const uri = parsePkcs11Uri('pkcs11:token=a;object=b;colour=blue;x-vendor=1');
    expect(uri.unknownPathAttributes).toEqual(['colour', 'x-vendor']);
  });

  it.each([
    ['pin-value', 'pkcs11:token=a;object=b;pin-value=1234', 'write it after "?"'],
    ['module-path', 'pkcs11:token=a;object=b;module-path=/p11.so', 'write it after "?"'],
    ['pin-source', 'pkcs11:token=a;object=b;pin-source=file:/pin', 'write it after "?"'],
    ['label', 'pkcs11:token=a;label=b', '(CKA_LABEL) is matched by object=LABEL'],
  ])('names the fix for a %s path attribute', (_name, reference, fix) => {
    let caught: { code?: string; message?: string } = {};
    try {
      assertUriSelectsObject(parsePkcs11Uri(reference));
    } catch (error) {
      caught = error as typeof caught;
    }
    expect(caught.code).toBe('ERR_PKCS11_KEY_NOT_FOUND');
    expect(caught.message).toContain(fix);
    expect(caught.message).not.toContain('1234');
  });

  it('ignores vendor query attributes', () => {
    expect(parsePkcs11Uri('pkcs11:object=a?x-vendor-flag=1').object).toBe('a');
  });

  it('rejects malformed references', () => {
    const invalid = [
      'pkcs11:object=a;object=b',
      'pkcs11:id=%01;id=%02',
      'pkcs11:id=%zz',
      'pkcs11:object=%e0%a4',
      'pkcs11:type=key',
      'pkcs11:slot-id=-1',
      'pkcs11:slot-id=0x10',
      'pkcs11:library-version=two',
      'pkcs11:object',
      'pkcs11:object=a?module-name=softhsm2',
      'pkcs11:object=a?pin-sorce=file:/pin',
      'awskms:alias/a',
    ];
    for (const text of invalid) {
      expect([text, codeOf(() => parsePkcs11Uri(text))]).toEqual([
        text,
        'ERR_KEY_REFERENCE_INVALID',
      ]);
    }
  });

  it('never repeats a pin-value in its errors', () => {
    const pin = 'secret-pin-9931';
    for (const text of [
      `pkcs11:object=a?pin-value=${pin}&pin-value=${pin}`,
      `pkcs11:object=a;pin-value=${pin}%zz`,
      `pkcs11:object=a?pin-value=${pin}%zz`,
      `pkcs11:object=a?pin-value=${pin}&bogus=1`,
    ]) {
      let message = '';
      try {
        parsePkcs11Uri(text);
      } catch (error) {
        message = `${(error as Error).message} ${JSON.stringify(error)}`;
      }
      expect(message).not.toBe('');
      expect(message).not.toContain(pin);
    }
  });

  it('rejects a pin-value run into another value', () => {
    const pin = 'secret-pin-5517';
    for (const text of [
      `pkcs11:object=a?module-path=/usr/lib/p11.so?pin-value=${pin}`,
      `pkcs11:object=a?module-path=/usr/lib/p11.so;pin-value=${pin}`,
      `pkcs11:object=a?pin-source=/run/pin?pin-value=${pin}`,
      `pkcs11:token=t;object=a&pin-value=${pin}`,
      `pkcs11:object=a;id=%01&pin-value=${pin}`,
      `pkcs11:object=a?PIN-VALUE%3D${pin}=1`,
    ]) {
      let thrown: unknown;
      try {
        parsePkcs11Uri(text);
      } catch (error) {
        thrown = error;
      }
      expect(thrown, text).toMatchObject({ code: 'ERR_KEY_REFERENCE_INVALID' });
      const error = thrown as Error;
      expect(`${error.message} ${error.stack} ${JSON.stringify(error)}`).not.toContain(pin);
      expect(error.message.toLowerCase()).not.toContain(pin);
    }
  });

  it('path attributes survive format and parse', () => {
    const label = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 24 });
    fc.assert(
      fc.property(label, label, fc.uint8Array({ minLength: 1, maxLength: 20 }), (t, o, id) => {
        const text = formatPathAttributes({
          filter: { token: t },
          object: o,
          id: Buffer.from(id),
          unknownPathAttributes: [],
        });
        const parsed = parsePkcs11Uri(text);
        expect(parsed.filter.token).toBe(t);
        expect(parsed.object).toBe(o);
        expect(parsed.id).toEqual(Buffer.from(id));
      }),
    );
  });

  it('formats the path part without the query', () => {
    const uri = parsePkcs11Uri(
      'pkcs11:token=a%3Bb;serial=1;slot-id=7;object=c%20d;id=%0b;type=private' +
        '?module-path=/m.so&pin-value=1234',
    );
    expect(formatPathAttributes(uri)).toBe(
      'pkcs11:token=a%3bb;serial=1;slot-id=7;object=c%20d;id=%0b;type=private',
    );
  });

  it('encodes values for the path and the query', () => {
    expect(encodeUriValue('a/b;c=d&e f')).toBe('a%2fb%3bc%3dd%26e%20f');
    expect(encodeQueryValue('/usr/lib/x.so')).toBe('/usr/lib/x.so');
    expect(encodeQueryValue('/a&b=c')).toBe('/a%26b%3dc');
    expect(encodeUriId(Buffer.from([0, 255]))).toBe('%00%ff');
  });
});

describe('module and PIN sources', () => {
  const moduleFile = process.execPath;

  function withEnvironment(values: Record<string, string | undefined>, run: () => void): void {
    const saved = Object.fromEntries(Object.keys(values).map((name) => [name, process.env[name]]));
    for (const [name, value] of Object.entries(values)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    try {
      run();
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  }

  it('module path precedence is URI, option, then environment', () => {
    const withPath = parsePkcs11Uri(`pkcs11:object=a?module-path=${moduleFile}`);
    const without = parsePkcs11Uri('pkcs11:object=a');
    withEnvironment(
      { KMS_JWT_PKCS11_MODULE: '/env/one.so', PKCS11_MODULE_PATH: '/env/two.so' },
      () => {
        expect(resolveModulePath(withPath, { modulePath: '/option.so' })).toBe(moduleFile);
        expect(codeOf(() => resolveModulePath(without, { modulePath: '/option.so' }))).toBe(
          'ERR_PKCS11_MODULE_NOT_FOUND',
        );
      },
    );
    withEnvironment(
      { KMS_JWT_PKCS11_MODULE: moduleFile, PKCS11_MODULE_PATH: '/env/two.so' },
      () => {
        expect(resolveModulePath(without, {})).toBe(moduleFile);
      },
    );
    withEnvironment({ KMS_JWT_PKCS11_MODULE: '', PKCS11_MODULE_PATH: moduleFile }, () => {
      expect(resolveModulePath(without, {})).toBe(moduleFile);
    });
    withEnvironment({ KMS_JWT_PKCS11_MODULE: undefined, PKCS11_MODULE_PATH: undefined }, () => {
      expect(codeOf(() => resolveModulePath(without, {}))).toBe('ERR_PKCS11_MODULE_MISSING');
    });
  });

  it('module error names where the path came from', () => {
    withEnvironment({ KMS_JWT_PKCS11_MODULE: '/env/missing.so' }, () => {
      expect(() => resolveModulePath(parsePkcs11Uri('pkcs11:object=a'), {})).toThrow(
        /"\/env\/missing\.so" \(from KMS_JWT_PKCS11_MODULE\)/,
      );
    });
  });

  it('PIN precedence is URI, option, then environment', async () => {
    const pinFile = join(folder, 'pin');
    writeFileSync(pinFile, 'from-file\r\n', { mode: 0o600 });
    const fromFile = parsePkcs11Uri(`pkcs11:object=a?pin-source=file:${pinFile}`);
    const fromValue = parsePkcs11Uri('pkcs11:object=a?pin-value=from-uri');
    const bare = parsePkcs11Uri('pkcs11:object=a');

    process.env.TEST_URI_PIN = 'from-env';
    try {
      const options = { pin: 'from-option', pinEnv: 'TEST_URI_PIN' };
      expect(await resolvePin(fromFile, options)).toEqual({
        pin: 'from-file',
        source: 'pin-source',
      });
      expect(await resolvePin(fromValue, options)).toEqual({
        pin: 'from-uri',
        source: 'pin-value',
      });
      expect(await resolvePin(bare, options)).toEqual({ pin: 'from-option', source: 'option' });
      expect(await resolvePin(bare, { pinEnv: 'TEST_URI_PIN' })).toEqual({
        pin: 'from-env',
        source: 'environment',
      });
      expect(await resolvePin(bare, { pinEnv: 'TEST_URI_UNSET' })).toEqual({
        pin: undefined,
        source: 'none',
      });
    } finally {
      delete process.env.TEST_URI_PIN;
    }
  });

  it('pin-value raises a warning without the PIN', async () => {
    const events: SignerEvent[] = [];
    await resolvePin(parsePkcs11Uri('pkcs11:object=a?pin-value=4711-secret'), {
      onEvent: (event) => events.push(event),
    });
    expect(events).toEqual([
      expect.objectContaining({ type: 'warning', code: 'pin-value-in-uri' }),
    ]);
    expect(JSON.stringify(events)).not.toContain('4711-secret');
  });

  it('both pin-source and pin-value are rejected', async () => {
    const uri = parsePkcs11Uri('pkcs11:object=a?pin-source=/p&pin-value=4711-secret');
    const error = (await resolvePin(uri, {}).catch((caught: unknown) => caught)) as Error & {
      code: string;
    };
    expect(error.code).toBe('ERR_KEY_REFERENCE_INVALID');
    expect(error.message).not.toContain('4711-secret');
  });

  it('pin-source of endless or huge content', async () => {
    const large = join(folder, 'large-pin');
    writeFileSync(large, 'x'.repeat(5000), { mode: 0o600 });
    for (const path of ['/dev/zero', large]) {
      const uri = parsePkcs11Uri(`pkcs11:object=a?pin-source=file:${path}`);
      await expect(resolvePin(uri, {})).rejects.toMatchObject({
        code: 'ERR_PKCS11_PIN_SOURCE_UNREADABLE',
        message: expect.stringContaining('larger than 4096 bytes'),
      });
    }
  });

  it('pin-source that is neither a file URI nor absolute', async () => {
    const uri = parsePkcs11Uri('pkcs11:object=a?pin-source=relative/pin');
    await expect(resolvePin(uri, {})).rejects.toMatchObject({ code: 'ERR_KEY_REFERENCE_INVALID' });
  });

  it('pin-source file URI with a relative path', async () => {
    // URL parsing reads file:secrets/pin as /secrets/pin, another file than the one meant.
    const uri = parsePkcs11Uri('pkcs11:object=a?pin-source=file:secrets/pin');
    await expect(resolvePin(uri, {})).rejects.toMatchObject({
      code: 'ERR_KEY_REFERENCE_INVALID',
      message: expect.stringContaining('file:/'),
    });
  });
});
