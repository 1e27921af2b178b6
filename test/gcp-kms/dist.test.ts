/**
 * The built adapter in dist/, in a child process for each module format: it signs through the
 * emulator that runs in this test process, and it names the package to install when
 * @google-cloud/kms or google-gax cannot be found.
 */
import { execFile } from 'node:child_process';
import { verify } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIfStale } from '../cli/support.js';
import type { EmulatedKey, GcpKmsEmulator } from '../emulators/gcp-kms/index.js';
import { keyRing, startEmulator } from './support.js';

let kms: GcpKmsEmulator;
let key: EmulatedKey;

beforeAll(async () => {
  buildIfStale();
  kms = await startEmulator();
  key = kms.createKey({ keyRing, cryptoKeyId: 'dist' });
});

afterAll(async () => {
  await kms.stop();
});

interface ChildResult {
  signature?: string;
  code?: string;
  message?: string;
}

const body = `
  try {
    const signer = await createGcpKmsSigner(process.env.REFERENCE);
    const signature = await signer.sign(Buffer.from('a.b'));
    await signer.close();
    console.log(JSON.stringify({ signature: Buffer.from(signature).toString('base64') }));
  } catch (error) {
    console.log(JSON.stringify({ code: error.code, message: error.message }));
  }`;

const scripts = {
  esm: `const { createGcpKmsSigner } = await import('./dist/gcp-kms.js');${body}`,
  cjs: `const { createGcpKmsSigner } = require('./dist/gcp-kms.cjs');
    (async () => {${body}})();`,
};

/** Runs the built adapter in a child node with `hidden` packages made unresolvable from dist/. */
async function runBuilt(format: 'esm' | 'cjs', hidden: string[] = []): Promise<ChildResult> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      '--import',
      './test/gcp-kms/hide-packages.mjs',
      `--input-type=${format === 'esm' ? 'module' : 'commonjs'}`,
      '-e',
      scripts[format],
    ],
    {
      env: {
        PATH: process.env.PATH ?? '',
        METADATA_SERVER_DETECTION: 'none',
        KMS_JWT_HIDDEN_PACKAGES: hidden.join(','),
        REFERENCE: kms.reference(key.versionName),
      },
    },
  );
  return JSON.parse(stdout.trim()) as ChildResult;
}

describe('built Cloud KMS adapter', () => {
  for (const format of ['esm', 'cjs'] as const) {
    it(`${format} build signs through the emulator`, async () => {
      const result = await runBuilt(format);
      expect(result.code).toBeUndefined();
      const signature = Buffer.from(result.signature!, 'base64');
      expect(signature.length).toBe(64);
      const valid = verify(
        'sha256',
        Buffer.from('a.b'),
        { key: key.publicKey, dsaEncoding: 'ieee-p1363' },
        signature,
      );
      expect(valid).toBe(true);
    });

    for (const missing of ['@google-cloud/kms', 'google-gax']) {
      it(`${format} build names a missing ${missing}`, async () => {
        const result = await runBuilt(format, [missing]);
        expect(result.signature).toBeUndefined();
        expect(result.code).toBe('ERR_PEER_MISSING');
        expect(result.message).toContain(`npm install ${missing}`);
      });
    }
  }
});
