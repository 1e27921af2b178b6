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

function findMissingPart(): string | undefined {
  if (!existsSync(softHsmModulePath)) return `the module ${softHsmModulePath} is missing`;
  if (spawnSync('softhsm2-util', ['--version']).error) return 'softhsm2-util is not on PATH';
  try {
    createRequire(import.meta.url).resolve('pkcs11js');
  } catch {
    return 'pkcs11js is not installed';
  }
  return undefined;
}

const missing = findMissingPart();

/**
 * `describe` when SoftHSM2 is available. Otherwise the block is skipped with a printed reason,
 * or, under CI=true, replaced by one failing test.
 */
export function describeWithSoftHsm(name: string, body: () => void): void {
  if (!missing) {
    describe(name, body);
    return;
  }
  const reason = `SoftHSM2 is not available: ${missing}. Install it with apt-get install softhsm2.`;
  if (process.env.CI === 'true') {
    describe(name, () => {
      it('SoftHSM2 is installed (required when CI=true)', () => {
        throw new Error(reason);
      });
    });
    return;
  }
  console.log(`Skipping "${name}": ${reason}`);
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
    object: { label: string; id: string; noPublicKey?: boolean },
  ): void;
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
      execFileSync('softhsm2-util', args, { env, stdio: 'pipe' });
      rmSync(file);
    },
    remove() {
      rmSync(folder, { recursive: true, force: true });
    },
  };
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
