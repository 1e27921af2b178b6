/**
 * Test-only helpers for the DER tests: the Wycheproof fixture reader, a BigInt DER encoder that
 * shares no code with src/der.ts, and an oracle that decides whether bytes are the one canonical
 * DER encoding of a P-256 signature.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fromBER, Integer, Sequence } from 'asn1js';

/** The order n of the P-256 base point (FIPS 186-4, D.1.2.3). */
export const curveOrder = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

export interface WycheproofCase {
  tcId: number;
  comment: string;
  flags: string[];
  msg: Buffer;
  sig: Buffer;
  result: 'valid' | 'invalid' | 'acceptable';
  publicKey: KeyObject;
}

interface RawGroup {
  publicKeyDer: string;
  tests: Array<{
    tcId: number;
    comment: string;
    flags: string[];
    msg: string;
    sig: string;
    result: WycheproofCase['result'];
  }>;
}

/** Reads one Wycheproof ECDSA file from test/fixtures/wycheproof, flattening its groups. */
export function readWycheproof(file: string): {
  numberOfTests: number;
  cases: WycheproofCase[];
} {
  const json = JSON.parse(readFileSync(`test/fixtures/wycheproof/${file}`, 'utf8')) as {
    numberOfTests: number;
    testGroups: RawGroup[];
  };
  const cases = json.testGroups.flatMap((group) => {
    const publicKey = createPublicKey({
      key: Buffer.from(group.publicKeyDer, 'hex'),
      format: 'der',
      type: 'spki',
    });
    return group.tests.map((test) => ({
      ...test,
      msg: Buffer.from(test.msg, 'hex'),
      sig: Buffer.from(test.sig, 'hex'),
      publicKey,
    }));
  });
  return { numberOfTests: json.numberOfTests, cases };
}

/** Encodes a non-negative BigInt as the content octets of a minimal DER INTEGER. */
export function integerContent(value: bigint): Buffer {
  let hex = value.toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  const bytes = Buffer.from(hex, 'hex');
  return bytes[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes;
}

/** Builds the canonical DER `Ecdsa-Sig-Value` for r and s, with short-form lengths. */
export function canonicalDer(r: bigint, s: bigint): Buffer {
  const rBytes = integerContent(r);
  const sBytes = integerContent(s);
  const content = Buffer.concat([
    Buffer.from([0x02, rBytes.length]),
    rBytes,
    Buffer.from([0x02, sBytes.length]),
    sBytes,
  ]);
  return Buffer.concat([Buffer.from([0x30, content.length]), content]);
}

/** Returns the 64-byte r || s for two scalars below 2^256. */
export function joseOf(r: bigint, s: bigint): Buffer {
  const hex = r.toString(16).padStart(64, '0') + s.toString(16).padStart(64, '0');
  return Buffer.from(hex, 'hex');
}

/** Reads a 32-byte big-endian scalar as a BigInt. */
export function scalarOf(bytes: Uint8Array): bigint {
  return BigInt(`0x${Buffer.from(bytes).toString('hex') || '0'}`);
}

/**
 * Returns r and s when `der` is exactly the canonical DER of a P-256 signature with
 * 1 <= r, s < n, and undefined otherwise. asn1js (a lenient BER parser) proposes the values, and
 * re-encoding them with {@link canonicalDer} must give back the same bytes. Any canonical DER
 * parses as BER, so a parse failure means that no canonical reading exists.
 */
export function canonicalReading(der: Uint8Array): { r: bigint; s: bigint } | undefined {
  const bytes = Uint8Array.from(der);
  let parsed: ReturnType<typeof fromBER>;
  try {
    parsed = fromBER(bytes);
  } catch {
    // asn1js throws on some malformed content, such as a bad GeneralizedTime.
    return undefined;
  }
  if (parsed.offset !== bytes.length || !(parsed.result instanceof Sequence)) return undefined;

  const items = parsed.result.valueBlock.value;
  if (items.length !== 2 || !items.every((item) => item instanceof Integer)) return undefined;

  const [r, s] = (items as Integer[]).map((item) => item.toBigInt()) as [bigint, bigint];
  const inRange = (value: bigint) => value >= 1n && value < curveOrder;
  if (!inRange(r) || !inRange(s)) return undefined;
  return canonicalDer(r, s).equals(bytes) ? { r, s } : undefined;
}

/** Runs `action` and returns the error it throws, or undefined when it returns. */
export function thrownBy(action: () => unknown): (Error & { code?: unknown }) | undefined {
  try {
    action();
  } catch (error) {
    return error as Error & { code?: unknown };
  }
  return undefined;
}
