/**
 * Property tests for the DER converter. fast-check draws r and s with short lengths (31, 30 and
 * 1 bytes) and high bits forced in. The expected DER comes from a BigInt encoder that shares no
 * code with src/der.ts, and real signatures come from node:crypto.
 */
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { derToJose, joseToDer } from '../../src/der.js';
import { canonicalDer, canonicalReading, curveOrder, joseOf, scalarOf } from './der-helpers.js';

const propertyRuns = 10_000;

/** Draws scalars of exactly `bytes` significant bytes, optionally with the top bit set. */
function scalarOfLength(bytes: number, highBit: boolean): fc.Arbitrary<bigint> {
  const bits = BigInt(8 * bytes);
  const min = highBit ? 1n << (bits - 1n) : 1n << (bits - 8n);
  const top = (1n << bits) - 1n;
  const max = top < curveOrder ? top : curveOrder - 1n;
  return fc.bigInt({ min: min > 0n ? min : 1n, max });
}

/** Scalars in [1, n), weighted towards the lengths and bit patterns that break converters. */
const scalar: fc.Arbitrary<bigint> = fc.oneof(
  { weight: 4, arbitrary: fc.bigInt({ min: 1n, max: curveOrder - 1n }) },
  { weight: 2, arbitrary: scalarOfLength(32, true) },
  { weight: 2, arbitrary: scalarOfLength(32, false) },
  { weight: 2, arbitrary: scalarOfLength(31, false) },
  { weight: 2, arbitrary: scalarOfLength(31, true) },
  { weight: 2, arbitrary: scalarOfLength(30, false) },
  { weight: 1, arbitrary: scalarOfLength(30, true) },
  { weight: 2, arbitrary: scalarOfLength(1, false) },
  { weight: 1, arbitrary: scalarOfLength(1, true) },
  { weight: 1, arbitrary: fc.constantFrom(1n, 0x7fn, 0x80n, 0xffn, curveOrder - 1n) },
);

/** Byte length of a scalar's minimal magnitude. */
function magnitudeLength(value: bigint): number {
  return Math.ceil(value.toString(16).length / 2);
}

function describeScalar(value: bigint): string {
  const length = magnitudeLength(value);
  const highBit = value >> BigInt(8 * length - 1) === 1n;
  return `${length}${highBit ? '+high' : ''}`;
}

describe('joseToDer and derToJose properties', () => {
  it('round-trip 10,000 random signatures', () => {
    const seen = new Map<string, number>();
    fc.assert(
      fc.property(scalar, scalar, (r, s) => {
        for (const value of [r, s]) {
          const kind = describeScalar(value);
          seen.set(kind, (seen.get(kind) ?? 0) + 1);
        }

        const jose = joseOf(r, s);
        const der = joseToDer(jose);
        expect(der.equals(canonicalDer(r, s))).toBe(true);
        expect(derToJose(der).equals(jose)).toBe(true);
      }),
      { numRuns: propertyRuns },
    );

    // Proves that the short and high-bit shapes were really drawn, not just allowed.
    for (const kind of ['31', '30', '1', '32+high', '31+high', '30+high', '1+high']) {
      expect(seen.get(kind) ?? 0, kind).toBeGreaterThan(200);
    }
  });

  it('accepts only canonical DER after mutation', () => {
    const mutated = fc
      .tuple(scalar, scalar, fc.nat({ max: 80 }), fc.integer({ min: 0, max: 255 }), fc.nat(4))
      .map(([r, s, position, byte, kind]) => mutate(canonicalDer(r, s), position, byte, kind));

    fc.assert(
      fc.property(mutated, (der) => {
        const reading = canonicalReading(der);
        let jose: Buffer | undefined;
        try {
          jose = derToJose(der);
        } catch (error) {
          expect((error as { code?: unknown }).code).toBe('ERR_SIGNATURE_DER_INVALID');
        }

        expect(jose !== undefined).toBe(reading !== undefined);
        if (jose && reading) expect(jose.equals(joseOf(reading.r, reading.s))).toBe(true);
      }),
      { numRuns: propertyRuns },
    );
  });

  it('rejects random bytes with a code', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        const reading = canonicalReading(bytes);
        try {
          const jose = derToJose(bytes);
          expect(reading).toBeDefined();
          expect(jose.equals(joseOf(reading!.r, reading!.s))).toBe(true);
        } catch (error) {
          expect((error as { code?: unknown }).code).toBe('ERR_SIGNATURE_DER_INVALID');
          expect(reading).toBeUndefined();
        }
      }),
      { numRuns: propertyRuns },
    );
  });

  it('rejects every 64-byte value outside [1, n)', () => {
    const outOfRange = fc.oneof(
      fc.constant(0n),
      fc.bigInt({ min: curveOrder, max: (1n << 256n) - 1n }),
    );
    fc.assert(
      fc.property(outOfRange, scalar, fc.boolean(), (bad, good, badFirst) => {
        const jose = badFirst ? joseOf(bad, good) : joseOf(good, bad);
        expect(() => joseToDer(jose)).toThrow(
          expect.objectContaining({
            code: 'ERR_SIGNATURE_JOSE_INVALID',
          }),
        );
      }),
      { numRuns: 2_000 },
    );
  });
});

/** Changes one byte, inserts one, deletes one, truncates, or appends one, at `position`. */
function mutate(der: Buffer, position: number, byte: number, kind: number): Buffer {
  const at = position % (der.length + 1);
  switch (kind) {
    case 0:
      return Buffer.from(der.map((value, index) => (index === at ? byte : value)));
    case 1:
      return Buffer.concat([der.subarray(0, at), Buffer.from([byte]), der.subarray(at)]);
    case 2:
      return Buffer.concat([der.subarray(0, at), der.subarray(at + 1)]);
    case 3:
      return der.subarray(0, at);
    default:
      return Buffer.concat([der, Buffer.from([byte])]);
  }
}

describe('real node:crypto signatures', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const signatureCount = 6_000;
  const signatures = Array.from({ length: signatureCount }, (_, index) => {
    const message = Buffer.from(`message ${index}`);
    return { message, der: sign('sha256', message, privateKey) };
  });

  it('convert, verify and match OpenSSL DER', () => {
    const failures: string[] = [];
    for (const { message, der } of signatures) {
      const jose = derToJose(der);
      const ok = verify('sha256', message, { key: publicKey, dsaEncoding: 'ieee-p1363' }, jose);
      if (!ok) failures.push(`${der.toString('hex')} does not verify`);
      // OpenSSL writes minimal DER, so joseToDer must produce the very same bytes.
      if (!joseToDer(jose).equals(der)) failures.push(`${der.toString('hex')} re-encodes`);
    }
    expect(failures).toEqual([]);
  });

  it('include short r and s', () => {
    // About 1 in 128 signatures has a short r or s, so 6,000 give dozens of them.
    const short = signatures.filter(({ der }) => {
      const jose = derToJose(der);
      return jose[0] === 0 || jose[32] === 0;
    });
    expect(short.length).toBeGreaterThan(5);
    for (const { der } of short) {
      const jose = derToJose(der);
      expect(scalarOf(jose.subarray(0, 32)) < curveOrder).toBe(true);
      expect(der.length).toBeLessThan(72);
    }
  });
});
