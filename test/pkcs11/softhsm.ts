/**
 * SoftHSM2 for the PKCS#11 tests: each test file gets fresh tokens in a temporary folder, through
 * its own SOFTHSM2_CONF, and removes them afterwards. SoftHSM2 reads SOFTHSM2_CONF at
 * C_Initialize, so a file sets it before its first signer and keeps it for its whole process.
 * Without SoftHSM2 the tests are skipped with a printed reason, except under CI=true, where a
 * missing SoftHSM2 is a failure.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'vitest';

/** Where Debian and Ubuntu install the SoftHSM2 module (package libsofthsm2). */
export const softHsmModulePath = process.env.SOFTHSM2_MODULE ?? '/usr/lib/softhsm/libsofthsm2.so';

/** The user PIN of every test token: a throwaway value made for these tests. */
export const userPin = '48151623-test-pin';
const soPin = '99887766-test-so-pin';

/** Returns what is missing for the SoftHSM2 tests, or undefined when everything is there. */
export function findMissingPart(modulePath = softHsmModulePath): string | undefined {
  if (!existsSync(modulePath)) return `the module ${modulePath} is missing`;
  if (spawnSync('softhsm2-util', ['--version']).error) return 'softhsm2-util is not on PATH';
  try {
    createRequire(import.meta.url).resolve('pkcs11js');
  } catch {
    return 'pkcs11js is not installed';
  }
  return undefined;
}

/** What to do with the SoftHSM2 tests: run them, skip them, or fail because CI needs them. */
export interface SoftHsmGate {
  action: 'run' | 'skip' | 'fail';
  reason?: string;
}

/**
 * Decides whether the SoftHSM2 tests run. A missing part skips them with a reason, except when
 * `CI` is `true`, where it fails, so that a CI machine without SoftHSM2 cannot pass unnoticed.
 */
export function decideSoftHsmGate(
  missing: string | undefined,
  env: Record<string, string | undefined>,
): SoftHsmGate {
  if (missing === undefined) return { action: 'run' };
  const reason = `SoftHSM2 is not available: ${missing}. Install it with apt-get install softhsm2.`;
  return { action: env.CI === 'true' ? 'fail' : 'skip', reason };
}

const gate = decideSoftHsmGate(findMissingPart(), process.env);

/**
 * `describe` when SoftHSM2 is available. Otherwise the block is skipped with a printed reason,
 * or, under CI=true, replaced by one failing test.
 */
export function describeWithSoftHsm(name: string, body: () => void): void {
  if (gate.action === 'run') {
    describe(name, body);
    return;
  }
  if (gate.action === 'fail') {
    describe(name, () => {
      it('SoftHSM2 is installed (required when CI=true)', () => {
        throw new Error(gate.reason);
      });
    });
    return;
  }
  console.log(`Skipping "${name}": ${gate.reason}`);
  describe.skip(name, body);
}

/** A temporary SoftHSM2 configuration with its token folder. */
export interface SoftHsm {
  folder: string;
  configPath: string;
  /** Initialises a token with {@link userPin}, returning its label. */
  createToken(label: string): string;
  /** Imports a PEM private key with softhsm2-util, which also writes the public-key object. */
  importPem(
    token: string,
    pem: string,
    object: { label: string; id: string; noPublicKey?: boolean; force?: boolean },
  ): void;
  /** The slot ID that SoftHSM2 gave the token with this label, read from softhsm2-util. */
  slotIdOf(label: string): number;
  /** The serial number of the token with this label. */
  serialOf(label: string): string;
  /** Deletes the folder; the caller must have closed every signer first. */
  remove(): void;
}

/**
 * Creates a SoftHSM2 configuration in a new temporary folder and points SOFTHSM2_CONF at it.
 *
 * @example
 * const hsm = createSoftHsm();
 * hsm.createToken('apple');
 */
export function createSoftHsm(): SoftHsm {
  const folder = mkdtempSync(join(tmpdir(), 'kms-jwt-softhsm-'));
  const tokens = join(folder, 'tokens');
  mkdirSync(tokens, { mode: 0o700 });
  const configPath = join(folder, 'softhsm2.conf');
  writeFileSync(
    configPath,
    `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n` +
      'slots.removable = false\n',
  );
  process.env.SOFTHSM2_CONF = configPath;
  const env = { ...process.env, SOFTHSM2_CONF: configPath };

  return {
    folder,
    configPath,
    createToken(label) {
      execFileSync(
        'softhsm2-util',
        ['--init-token', '--free', '--label', label, '--so-pin', soPin, '--pin', userPin],
        { env, stdio: 'pipe' },
      );
      return label;
    },
    importPem(token, pem, object) {
      const file = join(folder, `import-${object.id}.pem`);
      writeFileSync(file, pem, { mode: 0o600 });
      const args = ['--import', file, '--token', token, '--label', object.label];
      args.push('--id', object.id, '--pin', userPin);
      if (object.noPublicKey) args.push('--no-public-key');
      // --force writes the objects even when the ID is taken, as a duplicate left behind would be.
      if (object.force) args.push('--force');
      execFileSync('softhsm2-util', args, { env, stdio: 'pipe' });
      rmSync(file);
    },
    slotIdOf(label) {
      return Number(describeSlot(env, label).match(/^Slot (\d+)/)![1]);
    },
    serialOf(label) {
      return describeSlot(env, label).match(/Serial number:\s+(\S+)/)![1]!;
    },
    remove() {
      rmSync(folder, { recursive: true, force: true });
    },
  };
}

function describeSlot(env: NodeJS.ProcessEnv, label: string): string {
  const output = execFileSync('softhsm2-util', ['--show-slots'], { env, encoding: 'utf8' });
  const slot = output
    .split(/^(?=Slot )/m)
    .find((block) => new RegExp(`Label:\\s+${label}\\s*$`, 'm').test(block));
  if (!slot) throw new Error(`softhsm2-util lists no token labelled ${label}`);
  return slot;
}

/** Counts the calls of one native pkcs11js method and can undo the wrapping. */
export interface NativeSpy {
  calls: number;
  restore(): void;
}

type NativeMethod = (this: unknown, ...args: unknown[]) => unknown;

/**
 * Wraps a method of the native pkcs11js class, to count real calls into the module. pkcs11js
 * copies the native methods onto each instance when it is constructed, so the spy sees only
 * instances created after this call: create it before the signer.
 *
 * @example
 * const logins = spyOnNative('C_Login', (original) => original);
 */
export function spyOnNative(
  method: string,
  wrap?: (original: NativeMethod) => NativeMethod,
): NativeSpy {
  const pkcs11js = createRequire(import.meta.url)('pkcs11js') as { PKCS11: { prototype: object } };
  const prototype = Object.getPrototypeOf(pkcs11js.PKCS11.prototype) as Record<
    string,
    NativeMethod
  >;
  const original = prototype[method]!;
  const inner = wrap ? wrap(original) : original;
  const spy: NativeSpy = {
    calls: 0,
    restore: () => {
      prototype[method] = original;
    },
  };
  prototype[method] = function (this: unknown, ...args: unknown[]) {
    spy.calls += 1;
    return inner.apply(this, args);
  };
  return spy;
}

/** A fresh key pair with its PKCS#8 PEM, like an Apple `.p8`. */
export function createTestKey(type: 'p256' | 'p384' | 'rsa' = 'p256'): {
  privateKey: KeyObject;
  publicKey: KeyObject;
  pem: string;
} {
  const pair =
    type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: type === 'p256' ? 'prime256v1' : 'secp384r1' });
  const pem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return { privateKey: pair.privateKey, publicKey: pair.publicKey, pem };
}
