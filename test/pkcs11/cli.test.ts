// The built `kms-jwt` CLI with pkcs11: references, spawned against a real SoftHSM2 token:
// import a .p8, refuse to import over it, then public-key, client-secret and verify through the
// printed reference. Tokens are checked with jose and jsonwebtoken.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  buildIfStale,
  createTestKey as createKeyFile,
  expectOneErrorLine,
  runCli,
  verifyIndependently,
  type TestKey,
} from '../cli/support.js';
import {
  createSoftHsm,
  describeWithSoftHsm,
  softHsmModulePath,
  userPin,
  type SoftHsm,
} from './softhsm.js';

const keyId = 'PKC511KEY1';
const target = `pkcs11:token=cli-tests;object=siwa;id=%5a?module-path=${softHsmModulePath}`;
let hsm: SoftHsm;
let keyFile: TestKey;
let reference: string;

/** Builds the environment of a run: the SoftHSM2 configuration and the PIN variable. */
function hsmEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { SOFTHSM2_CONF: hsm.configPath, KMS_JWT_PKCS11_PIN: userPin, ...extra };
}

function clientSecretArgs(key: string): string[] {
  return [
    'client-secret',
    '--key',
    key,
    '--team-id',
    'TEAM123456',
    '--client-id',
    'com.example.web',
    '--key-id',
    keyId,
  ];
}

// Lists the class (2 public, 3 private) of each object with a label, in a process of its own.
const listScript = `
const { PKCS11 } = require(process.env.BINDING);
const p11 = new PKCS11();
p11.load(process.env.MODULE);
p11.C_Initialize();
const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === 'cli-tests');
const session = p11.C_OpenSession(slot, 4);
p11.C_Login(session, 1, process.env.PIN);
p11.C_FindObjectsInit(session, [{ type: 3, value: process.env.LABEL }]);
const classes = [];
for (let h = p11.C_FindObjects(session); h; h = p11.C_FindObjects(session)) {
  classes.push(p11.C_GetAttributeValue(session, h, [{ type: 0 }])[0].value.readUInt32LE(0));
}
p11.C_FindObjectsFinal(session);
p11.C_Logout(session);
p11.C_Finalize();
console.log(JSON.stringify(classes.sort()));
`;

function objectClasses(label: string): number[] {
  const output = execFileSync(process.execPath, ['-e', listScript], {
    encoding: 'utf8',
    env: {
      ...process.env,
      ...hsmEnv(),
      BINDING: createRequire(import.meta.url).resolve('pkcs11js'),
      MODULE: softHsmModulePath,
      PIN: userPin,
      LABEL: label,
    },
  });
  return JSON.parse(output) as number[];
}

describeWithSoftHsm('kms-jwt with pkcs11 references', () => {
  beforeAll(async () => {
    buildIfStale();
    hsm = createSoftHsm();
    hsm.createToken('cli-tests');
    hsm.createToken('cli-wrong-pin');
    keyFile = createKeyFile(keyId);

    const run = await runCli(['import', '--from', keyFile.path, '--to', target], { env: hsmEnv() });
    expect(run.stderr).not.toContain('error');
    expect(run.code).toBe(0);
    reference = run.stdout.trim();
  });

  afterAll(() => {
    keyFile?.remove();
    hsm?.remove();
  });

  it('import prints the reference to use', () => {
    expect(reference).toBe(
      `pkcs11:token=cli-tests;object=siwa;id=%5a;type=private?module-path=${softHsmModulePath}`,
    );
  });

  it('import refuses to overwrite the object', async () => {
    const other = createKeyFile('OTHERKEY01');
    try {
      const run = await runCli(['import', '--from', other.path, '--to', target], { env: hsmEnv() });
      expect(run.code).toBe(3);
      expectOneErrorLine(run, 'ERR_PKCS11_OBJECT_EXISTS');
      expect(run.stderr).toContain('--overwrite');
      expect(run.stderr).not.toContain(userPin);

      const publicKey = await runCli(['public-key', '--key', reference, '--format', 'thumbprint'], {
        env: hsmEnv(),
      });
      const expected = await runCli([
        'public-key',
        '--key',
        keyFile.path,
        '--format',
        'thumbprint',
      ]);
      expect(publicKey.stdout).toBe(expected.stdout);
    } finally {
      other.remove();
    }
  });

  it('import with --overwrite replaces the object', async () => {
    const other = createKeyFile('OTHERKEY02');
    const overwriteTarget = `pkcs11:token=cli-tests;object=replace-me;id=%6b?module-path=${softHsmModulePath}`;
    try {
      const first = await runCli(['import', '--from', keyFile.path, '--to', overwriteTarget], {
        env: hsmEnv(),
      });
      expect(first.code).toBe(0);
      const args = ['import', '--from', other.path, '--to', overwriteTarget, '--overwrite'];
      const second = await runCli(args, { env: hsmEnv() });
      expect(second.code).toBe(0);
      expect(second.stderr).toContain('kms-jwt: replacedObjects: 2');

      const run = await runCli(['public-key', '--key', second.stdout.trim(), '--format', 'pem'], {
        env: hsmEnv(),
      });
      expect(run.stdout).toBe(other.publicPem);
    } finally {
      other.remove();
    }
  });

  it('public-key prints the token key', async () => {
    const run = await runCli(['public-key', '--key', reference, '--format', 'pem'], {
      env: hsmEnv(),
    });
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(keyFile.publicPem);
    expect(run.stderr).toMatch(/^kms-jwt: thumbprint: [\w-]{43}\n$/);
  });

  it('client-secret signs through the token', async () => {
    const run = await runCli(clientSecretArgs(reference), { env: hsmEnv() });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const claims = await verifyIndependently(run.stdout.trim(), keyFile.publicPem);
    expect(claims).toMatchObject({ iss: 'TEAM123456', sub: 'com.example.web' });
  });

  it('verify checks a token against the token key', async () => {
    const minted = await runCli(clientSecretArgs(keyFile.path));
    expect(minted.code).toBe(0);
    const run = await runCli(['verify', '-', '--key', reference], {
      env: hsmEnv(),
      input: minted.stdout,
    });
    expect(run.stdout).toBe('valid\n');
    expect(run.code).toBe(0);

    const other = createKeyFile('OTHERKEY03');
    try {
      const foreign = await runCli(clientSecretArgs(other.path));
      const rejected = await runCli(['verify', '-', '--key', reference], {
        env: hsmEnv(),
        input: foreign.stdout,
      });
      expect(rejected.code).toBe(1);
      expect(rejected.stderr).toContain('does not verify');
    } finally {
      other.remove();
    }
  });

  it('module path and PIN from the environment and a PIN file', async () => {
    const pinFile = join(hsm.folder, 'cli-pin');
    writeFileSync(pinFile, `${userPin}\n`, { mode: 0o600 });
    const bare = `pkcs11:token=cli-tests;object=siwa?pin-source=file:${pinFile}`;
    const env = { SOFTHSM2_CONF: hsm.configPath, KMS_JWT_PKCS11_MODULE: softHsmModulePath };
    const run = await runCli(clientSecretArgs(bare), { env });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    await verifyIndependently(run.stdout.trim(), keyFile.publicPem);
  });

  it('pin-value warns on stderr without the PIN', async () => {
    const withPin = `${reference}&pin-value=${userPin}`;
    const run = await runCli(clientSecretArgs(withPin), { env: { SOFTHSM2_CONF: hsm.configPath } });
    expect(run.code).toBe(0);
    expect(run.stderr).toContain('pin-value');
    expect(run.stderr).not.toContain(userPin);
  });

  it('--cache writes no PIN from pin-value', async () => {
    const cache = join(hsm.folder, 'cli-cache.json');
    const withPin = `${reference}&pin-value=${userPin}`;
    const env = { SOFTHSM2_CONF: hsm.configPath };
    const first = await runCli([...clientSecretArgs(withPin), '--cache', cache], { env });
    expect(first.code).toBe(0);

    const text = readFileSync(cache, 'utf8');
    expect(text).not.toContain(userPin);
    expect(text).not.toContain(createHash('sha256').update(withPin).digest('hex'));
    expect(text).not.toContain(createHash('sha256').update(userPin).digest('hex'));

    // The same key with its PIN from the environment is a cache hit: the PIN is not in the key.
    const second = await runCli([...clientSecretArgs(reference), '--cache', cache, '--json'], {
      env: hsmEnv(),
    });
    expect(second.code).toBe(0);
    const output = JSON.parse(second.stdout) as { token: string; cache: string };
    expect(output.cache).toBe('hit');
    expect(output.token).toBe(first.stdout.trim());
  });

  it('wrong PIN exits 3 without the PIN', async () => {
    const wrongPin = 'cli-wrong-pin-88301';
    const key = `pkcs11:token=cli-wrong-pin;object=siwa?module-path=${softHsmModulePath}`;
    const run = await runCli(clientSecretArgs(key), {
      env: hsmEnv({ KMS_JWT_PKCS11_PIN: wrongPin }),
    });
    expect(run.code).toBe(3);
    expectOneErrorLine(run, 'ERR_PKCS11_PIN_INCORRECT');
    expect(run.stderr).not.toContain(wrongPin);
  });

  it('missing object exits 3 with its code', async () => {
    const key = `pkcs11:token=cli-tests;object=absent?module-path=${softHsmModulePath}`;
    const run = await runCli(['public-key', '--key', key], { env: hsmEnv() });
    expect(run.code).toBe(3);
    expectOneErrorLine(run, 'ERR_PKCS11_KEY_NOT_FOUND');
  });

  it('import finishes before a signal ends it', async () => {
    const preload = resolve('test/pkcs11/fixtures/interrupt-import.mjs');
    for (const [signal, exitCode, id] of [
      ['SIGINT', 130, '%7a'],
      ['SIGTERM', 143, '%7b'],
    ] as const) {
      const label = `interrupted-${signal.toLowerCase()}`;
      const interruptedTarget = target.replace('object=siwa;id=%5a', `object=${label};id=${id}`);
      const run = await runCli(['import', '--from', keyFile.path, '--to', interruptedTarget], {
        env: hsmEnv({ NODE_OPTIONS: `--import=${preload}`, INTERRUPT_SIGNAL: signal }),
      });

      // The signal came between the two objects. The import must not stop there.
      expect(objectClasses(label)).toEqual([2, 3]);
      expect(run.code).toBe(exitCode);
      expect(run.stdout).toContain(`object=${label}`);
      expect(run.stderr).toContain(signal);
    }
  });

  it('second signal stops the import at once', async () => {
    const preload = resolve('test/pkcs11/fixtures/interrupt-import.mjs');
    const label = 'interrupted-twice';
    const interruptedTarget = target.replace('object=siwa;id=%5a', `object=${label};id=%7c`);
    const run = await runCli(['import', '--from', keyFile.path, '--to', interruptedTarget], {
      env: hsmEnv({ NODE_OPTIONS: `--import=${preload}`, INTERRUPT_COUNT: '2' }),
    });

    // Killed by the signal itself: no exit code and no reference printed.
    expect(run.code).toBeNull();
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('Send it again to stop at once');
  });
});
