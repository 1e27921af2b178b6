import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { crc32c } from '../../adapters/gcp-kms/index.js';

describe('CRC32C', () => {
  it('matches the check value', () => {
    // The standard check value of CRC-32C (Castagnoli): the CRC of the ASCII digits 1 to 9.
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });

  it('is not zlib CRC-32', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32c(Buffer.from('123456789'))).not.toBe(0xcbf43926);
  });

  it('matches the iSCSI vectors', () => {
    // RFC 3720 appendix B.4 gives these 32-byte messages and their CRC32C values.
    const ascending = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
    const descending = Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i));
    expect(crc32c(Buffer.alloc(32, 0x00))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(crc32c(ascending)).toBe(0x46dd794e);
    expect(crc32c(descending)).toBe(0x113fdb5c);
  });

  it('handles empty and typed input', () => {
    expect(crc32c(new Uint8Array(0))).toBe(0);
    const bytes = new TextEncoder().encode('123456789');
    expect(crc32c(bytes)).toBe(0xe3069283);
    expect(crc32c(Buffer.from(bytes).subarray(0, 9))).toBe(0xe3069283);
  });

  it('returns unsigned 32-bit numbers', () => {
    for (let length = 1; length < 200; length += 7) {
      const value = crc32c(Buffer.alloc(length, length));
      expect(Number.isInteger(value)).toBe(true);
      expect(value).toBeGreaterThanOrEqual(0);
      expect(value).toBeLessThanOrEqual(0xffff_ffff);
    }
  });
});

describe('CRC32C package loading', () => {
  const folder = mkdtempSync(join(tmpdir(), 'kms-jwt-crc32c-loads-'));
  let runs = 0;

  afterAll(() => {
    rmSync(folder, { recursive: true, force: true });
  });

  /** Loads `entry` from dist/ in a child node and returns every module path it loaded. */
  function loadsOf(type: 'module' | 'commonjs', entry: string): string[] {
    const log = join(folder, `loads-${(runs += 1)}.log`);
    const script =
      type === 'module' ? `await import('./dist/${entry}');` : `require('./dist/${entry}');`;
    execFileSync(
      process.execPath,
      ['--import', './test/support/record-loads.mjs', `--input-type=${type}`, '-e', script],
      { env: { ...process.env, KMS_JWT_LOAD_LOG: log }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    return readFileSync(log, 'utf8').trim().split('\n');
  }

  const crcPackage = /\/node_modules\/@aws-crypto\/crc32c\//;

  for (const type of ['module', 'commonjs'] as const) {
    const extension = type === 'module' ? 'js' : 'cjs';

    it(`root ${type} entry leaves it unloaded`, () => {
      const loads = loadsOf(type, `index.${extension}`);
      expect(loads.some((line) => line.endsWith(`/dist/index.${extension}`))).toBe(true);
      expect(loads.filter((line) => crcPackage.test(line))).toEqual([]);
    });

    it(`gcp-kms ${type} entry loads it`, () => {
      const loads = loadsOf(type, `gcp-kms.${extension}`);
      expect(loads.some((line) => crcPackage.test(line))).toBe(true);
    });
  }
});
