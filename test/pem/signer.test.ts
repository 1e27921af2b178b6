/**
 * The local signer: its source argument ({ path }, { pem } or { env }, exactly one), file and
 * variable errors, key references through the scheme registry, the shared conformance suite, and
 * the promise that no copy of the key text stays in memory once the key is parsed.
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, verify } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createPemSigner,
  keyIdFromFileName,
  loadPrivateKey,
  loadPublicKey,
} from '../../adapters/pem/index.js';
import { isTrustedLocalSigner } from '../../src/internal.js';
import { createSigner } from '../../src/key-uri.js';
import type { SignerEvent } from '../../src/signer.js';
import { describeSignerConformance } from '../conformance/suite.js';
import { createP256Fixture, expectNoKeyText, jwkOf, rejectionOf } from './support.js';

const key = createP256Fixture();
const variable = 'KMS_JWT_TEST_SIGNER_KEY';
let folder: string;
let keyPath: string;

beforeAll(() => {
  folder = mkdtempSync(join(tmpdir(), 'kms-jwt-pem-signer-'));
  keyPath = join(folder, 'AuthKey_ABC123DEFG.p8');
  writeFileSync(keyPath, key.pkcs8Pem, { mode: 0o600 });
});

afterAll(() => rmSync(folder, { recursive: true, force: true }));

afterEach(() => {
  delete process.env[variable];
});

describe('createPemSigner source argument', () => {
  const badSources: Array<[string, unknown, RegExp]> = [
    ['a string', 'file:key.p8', /not a string.*createSigner/],
    ['null', null, /but got null/],
    ['an empty object', {}, /empty object/],
    ['path and pem', { path: 'a.p8', pem: 'x' }, /exactly one field, but got path and pem/],
    ['pem and env', { pem: 'x', env: 'KEY' }, /exactly one field, but got pem and env/],
    ['an unknown field', { file: 'a.p8' }, /unknown field file/],
    ['an undefined pem', { pem: undefined }, /pem is undefined.*\{ env: NAME \}/],
    ['an empty path', { path: '' }, /path must be a non-empty string/],
    ['a number as pem', { pem: 42 }, /pem must be a string or a Buffer/],
    ['NAME=VALUE as env', { env: 'KEY=value' }, /not NAME=VALUE/],
  ];

  it.each(badSources)('rejects %s with TypeError', async (_, source, message) => {
    const error = await rejectionOf(createPemSigner(source as never));
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toMatch(message);
  });

  it('rejects passphrase and passphraseEnv together', async () => {
    const error = await rejectionOf(
      createPemSigner({ pem: key.pkcs8Pem }, { passphrase: 'a', passphraseEnv: 'B' }),
    );
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toMatch(/not both/);
  });

  it('accepts a Buffer as pem', async () => {
    const signer = await createPemSigner({ pem: Buffer.from(key.pkcs8Pem) });
    expect(jwkOf(await signer.getPublicKey())).toEqual(jwkOf(key.publicKey));
    expect(signer.keyId).toBe('pem:inline');
  });

  it('leaves the caller Buffer intact', async () => {
    const input = Buffer.from(key.pkcs8Pem);
    await createPemSigner({ pem: input });
    expect(input.toString()).toBe(key.pkcs8Pem);
  });
});

describe('createPemSigner sources', () => {
  it('reads a file and names it in keyId', async () => {
    const signer = await createPemSigner({ path: keyPath });
    expect(signer.keyId).toBe(`file:${keyPath}`);
    expect(jwkOf(await signer.getPublicKey())).toEqual(jwkOf(key.publicKey));
  });

  it('reads an environment variable', async () => {
    process.env[variable] = key.pkcs8Pem;
    const signer = await createPemSigner({ env: variable });
    expect(signer.keyId).toBe(`env:${variable}`);
    expect(jwkOf(await signer.getPublicKey())).toEqual(jwkOf(key.publicKey));
  });

  it('names a missing file', async () => {
    const error = await rejectionOf(createPemSigner({ path: join(folder, 'missing.p8') }));
    expect(error.code).toBe('ERR_KEY_FILE_NOT_FOUND');
    expect(error.message).toContain('missing.p8');
  });

  it('names a directory', async () => {
    const error = await rejectionOf(createPemSigner({ path: folder }));
    expect(error.code).toBe('ERR_KEY_FILE_UNREADABLE');
    expect(error.message).toMatch(/is a directory/);
  });

  it('refuses a file far larger than a key', async () => {
    const large = join(folder, 'large.pem');
    writeFileSync(large, Buffer.alloc(70 * 1024, 0x41), { mode: 0o600 });
    const error = await rejectionOf(createPemSigner({ path: large }));
    expect(error.code).toBe('ERR_KEY_FILE_TOO_LARGE');
  });

  it('names an unset variable', async () => {
    const error = await rejectionOf(createPemSigner({ env: variable }));
    expect(error.code).toBe('ERR_KEY_ENV_UNSET');
    expect(error.message).toContain(variable);
  });

  it('warns when others can read the file', async () => {
    const exposed = join(folder, 'exposed.p8');
    writeFileSync(exposed, key.pkcs8Pem);
    chmodSync(exposed, 0o644);
    const events: SignerEvent[] = [];
    await createPemSigner({ path: exposed }, { onEvent: (event) => events.push(event) });

    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'warning', reason: 'key-file-permissions' });
    expect(events[0]!.message).toMatch(/readable by group and others \(mode 0644\)/);
    expect(events[0]!.message).toContain('chmod 600');
  });

  it('warns from loadPublicKey only for private keys', async () => {
    const privateDer = join(folder, 'exposed-private.der');
    writeFileSync(
      privateDer,
      createPrivateKey(key.pkcs8Pem).export({ type: 'pkcs8', format: 'der' }),
    );
    const publicDer = join(folder, 'exposed-public.der');
    writeFileSync(publicDer, createPublicKey(key.pkcs8Pem).export({ type: 'spki', format: 'der' }));
    chmodSync(privateDer, 0o644);
    chmodSync(publicDer, 0o644);

    const privateEvents: SignerEvent[] = [];
    await loadPublicKey({ path: privateDer }, { onEvent: (event) => privateEvents.push(event) });
    const warnings = privateEvents.filter((event) => event.type === 'warning');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ reason: 'key-file-permissions' });
    expect(warnings[0]!.message).toContain('exposed-private.der');

    const publicEvents: SignerEvent[] = [];
    await loadPublicKey({ path: publicDer }, { onEvent: (event) => publicEvents.push(event) });
    expect(publicEvents.filter((event) => event.type === 'warning')).toEqual([]);
  });

  it('stays quiet for a 0600 file', async () => {
    const events: SignerEvent[] = [];
    await createPemSigner({ path: keyPath }, { onEvent: (event) => events.push(event) });
    expect(events).toEqual([]);
  });

  it('keeps key text out of file errors', async () => {
    const corrupt = join(folder, 'corrupt.p8');
    writeFileSync(corrupt, key.pkcs8Pem.replace(/-----END[^\n]*\n/, ''), { mode: 0o600 });
    const error = await rejectionOf(createPemSigner({ path: corrupt }));
    expect(error.code).toBe('ERR_KEY_ARMOUR_INVALID');
    expect(error.message).toContain(corrupt);
    expectNoKeyText(error, key.pkcs8Pem);
  });
});

describe('local signer', () => {
  it('returns 64-byte r||s that node:crypto verifies', async () => {
    const signer = await createPemSigner({ pem: key.pkcs8Pem });
    const input = Buffer.from('eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJURUFNQUFBQTExIn0');
    for (let i = 0; i < 50; i++) {
      const signature = await signer.sign(input);
      expect(signature.length).toBe(64);
      const options = { key: key.publicKey, dsaEncoding: 'ieee-p1363' as const };
      expect(verify('sha256', input, options, signature)).toBe(true);
    }
  });

  it('is the trusted local signer', async () => {
    const signer = await createPemSigner({ pem: key.pkcs8Pem });
    expect(isTrustedLocalSigner(signer)).toBe(true);
    expect(isTrustedLocalSigner({ ...signer })).toBe(false);
    expect(Object.isFrozen(signer)).toBe(true);
  });

  it('exposes no key material', async () => {
    const signer = await createPemSigner({ pem: key.pkcs8Pem });
    expect(Object.keys(signer).sort()).toEqual(['close', 'getPublicKey', 'keyId', 'sign']);
    expect((await signer.getPublicKey()).type).toBe('public');
  });

  it('refuses to sign after close', async () => {
    const signer = await createPemSigner({ pem: key.pkcs8Pem });
    await signer.close?.();
    const error = await rejectionOf(signer.sign(Buffer.from('a.b')));
    expect(error.code).toBe('ERR_KEY_SIGNER_CLOSED');
  });

  it('rejects a string signing input', async () => {
    const signer = await createPemSigner({ pem: key.pkcs8Pem });
    await expect(signer.sign('a.b' as never)).rejects.toThrow(TypeError);
  });

  it('raises ERR_KEY_ABORTED for an aborted signal', async () => {
    const controller = new AbortController();
    const reason = new Error('caller gave up');
    controller.abort(reason);
    const signer = await createPemSigner({ pem: key.pkcs8Pem });
    const calls = {
      sign: () => signer.sign(Buffer.from('a.b'), { signal: controller.signal }),
      getPublicKey: () => signer.getPublicKey({ signal: controller.signal }),
      createPemSigner: () => createPemSigner({ pem: key.pkcs8Pem }, { signal: controller.signal }),
    };
    for (const [operation, call] of Object.entries(calls)) {
      const error = await call().then(
        () => undefined,
        (caught: unknown) => caught as { code?: string; cause?: unknown; details?: object },
      );
      expect(error?.code, operation).toBe('ERR_KEY_ABORTED');
      expect(error?.cause, operation).toBe(reason);
      expect(error?.details, operation).toMatchObject({ operation });
    }
  });
});

describe('pem key references', () => {
  it('accepts a bare path, file:, file:// and a relative path', async () => {
    const references = [
      keyPath,
      `file:${keyPath}`,
      pathToFileURL(keyPath).href,
      relative(process.cwd(), keyPath),
    ];
    for (const reference of references) {
      const signer = await createSigner(reference);
      expect(signer.keyId).toBe(`file:${keyPath}`);
      expect(jwkOf(await signer.getPublicKey())).toEqual(jwkOf(key.publicKey));
    }
  });

  it('expands ~/ after file:', async () => {
    const home = mkdtempSync(join(homedir(), '.kms-jwt-test-'));
    try {
      mkdirSync(join(home, 'keys'));
      writeFileSync(join(home, 'keys', 'k.p8'), key.pkcs8Pem, { mode: 0o600 });
      const rest = `~/${relative(homedir(), join(home, 'keys', 'k.p8'))}`;
      const signer = await createSigner(`file:${rest}`);
      expect(signer.keyId).toBe(`file:${resolve(home, 'keys', 'k.p8')}`);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('reads env:NAME', async () => {
    process.env[variable] = JSON.stringify(key.pkcs8Pem);
    const signer = await createSigner(`env:${variable}`);
    expect(jwkOf(await signer.getPublicKey())).toEqual(jwkOf(key.publicKey));
  });

  it('passes passphraseEnv through createSigner', async () => {
    const passphrase = 'throwaway passphrase';
    process.env[variable] = key.privateKey
      .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase })
      .toString();
    process.env[`${variable}_PASS`] = passphrase;
    try {
      const signer = await createSigner(`env:${variable}`, { passphraseEnv: `${variable}_PASS` });
      expect(jwkOf(await signer.getPublicKey())).toEqual(jwkOf(key.publicKey));
    } finally {
      delete process.env[`${variable}_PASS`];
    }
  });

  it('rejects a malformed env: name', async () => {
    const error = await rejectionOf(createSigner('env:1BAD-NAME'));
    expect(error.code).toBe('ERR_KEY_REFERENCE_INVALID');
  });

  it('reads the key ID from an AuthKey file name', () => {
    expect(keyIdFromFileName('/keys/AuthKey_ABC123DEFG.p8')).toBe('ABC123DEFG');
    expect(keyIdFromFileName('file:./AuthKey_ABC123DEFG (1).p8')).toBe('ABC123DEFG');
    expect(keyIdFromFileName('C:\\keys\\AuthKey_ABC123DEFG.p8')).toBe('ABC123DEFG');
    expect(keyIdFromFileName('/keys/AuthKey_abc123defg.p8')).toBeUndefined();
    expect(keyIdFromFileName('/keys/AuthKey_ABC123DEF.p8')).toBeUndefined();
    expect(keyIdFromFileName('/keys/key.p8')).toBeUndefined();
  });
});

describe('no copy of the key text', () => {
  // A child process loads the key from a file, signs, drops everything but the signer, runs a
  // full garbage collection and writes a V8 heap snapshot. The snapshot must not contain any
  // fragment of the key's base64 body. The canary run keeps the file text on purpose, to prove
  // that the search finds key text when it is there.
  const script = `
    import { readFileSync } from 'node:fs';
    import { writeHeapSnapshot } from 'node:v8';
    const [pemModule, keyPath, snapshotPath, mode] = process.argv.slice(-4);
    const { createPemSigner } = await import(pemModule);
    if (mode === 'canary') globalThis.kept = readFileSync(keyPath, 'utf8');
    const signer = await createPemSigner({ path: keyPath });
    await signer.sign(Buffer.from('eyJhbGciOiJFUzI1NiJ9.e30'));
    globalThis.signer = signer;
    globalThis.gc();
    writeHeapSnapshot(snapshotPath);
  `;

  function snapshotContainsKeyText(mode: 'signer' | 'canary'): string[] {
    const snapshotPath = join(folder, `${mode}.heapsnapshot`);
    const pemModule = pathToFileURL(resolve('dist/pem.js')).href;
    execFileSync(
      process.execPath,
      [
        '--expose-gc',
        '--input-type=module',
        '-e',
        script,
        '--',
        pemModule,
        keyPath,
        snapshotPath,
        mode,
      ],
      { stdio: 'pipe' },
    );
    const snapshot = readFileSync(snapshotPath, 'utf8');
    rmSync(snapshotPath, { force: true });
    // Every P-256 .p8 starts with the same 48 characters, which the loader's source contains too.
    const fixedPrefix = 'MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg';
    return key.bodyLines
      .flatMap((line) => [0, 20, 40].map((start) => line.slice(start, start + 16)))
      .filter((fragment) => !fixedPrefix.includes(fragment) && snapshot.includes(fragment));
  }

  it('the canary finds kept text', () => {
    expect(snapshotContainsKeyText('canary').length).toBeGreaterThan(0);
  });

  it('the signer keeps none', () => {
    expect(snapshotContainsKeyText('signer')).toEqual([]);
  });
});

describeSignerConformance('pem file', async () => {
  const signer = await createPemSigner({ path: keyPath });
  return { signer, expectedPublicKey: key.publicKey, close: async () => signer.close?.() };
});

describeSignerConformance('pem env with a mangled key', async () => {
  process.env[`${variable}_CONFORMANCE`] = key.pkcs8Pem.trimEnd().replace(/\n/g, '\\n');
  const signer = await createSigner(`env:${variable}_CONFORMANCE`);
  const expectedPublicKey = createPublicKey(await loadPrivateKey({ pem: key.sec1Pem }));
  return {
    signer,
    expectedPublicKey,
    close: async () => {
      delete process.env[`${variable}_CONFORMANCE`];
      await signer.close?.();
    },
  };
});
