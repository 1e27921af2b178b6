/**
 * Runs derToJose and joseToDer over the Project Wycheproof ECDSA P-256 / SHA-256 vectors in
 * test/fixtures/wycheproof. node:crypto (OpenSSL) is the verifier, and an asn1js-based oracle
 * in der-helpers.ts decides independently which inputs are canonical DER.
 */
import { verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { derToJose, joseToDer } from '../../src/der.js';
import {
  canonicalDer,
  canonicalReading,
  curveOrder,
  readWycheproof,
  scalarOf,
  thrownBy,
  type WycheproofCase,
} from './der-helpers.js';

const derFile = readWycheproof('ecdsa_secp256r1_sha256_test.json');
const p1363File = readWycheproof('ecdsa_secp256r1_sha256_p1363_test.json');

function label(test: WycheproofCase): string {
  return `tcId ${test.tcId} (${test.result}, ${test.comment})`;
}

function verifiesAsP1363(test: WycheproofCase, jose: Uint8Array): boolean {
  return verify('sha256', test.msg, { key: test.publicKey, dsaEncoding: 'ieee-p1363' }, jose);
}

function verifiesAsDer(test: WycheproofCase, der: Uint8Array): boolean {
  return verify('sha256', test.msg, { key: test.publicKey, dsaEncoding: 'der' }, der);
}

function countByResult(cases: WycheproofCase[]): Record<string, number> {
  const counts: Record<string, number> = { valid: 0, invalid: 0, acceptable: 0 };
  for (const test of cases) counts[test.result]! += 1;
  return counts;
}

/**
 * What derToJose must do with one DER case, whatever its Wycheproof verdict. Bytes that are the
 * canonical DER of an in-range signature convert, and the converted signature verifies exactly
 * when Wycheproof calls the case valid. Any other bytes are rejected with a coded error.
 *
 * "acceptable" cases get the strict treatment on purpose. Wycheproof uses that verdict for inputs
 * that a lenient verifier may take, such as BER length forms. This converter promises DER only,
 * so such a case must be rejected unless it is canonical DER, and then it must verify.
 */
function checkDerCase(test: WycheproofCase): string | undefined {
  const reading = canonicalReading(test.sig);
  let jose: Buffer;
  try {
    jose = derToJose(test.sig);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code !== 'ERR_SIGNATURE_DER_INVALID') return `${label(test)}: threw ${String(error)}`;
    if (reading) return `${label(test)}: rejected canonical DER: ${(error as Error).message}`;
    if (test.result === 'valid') return `${label(test)}: rejected a valid case`;
    return undefined;
  }

  if (!reading) return `${label(test)}: accepted bytes that are not canonical DER`;
  if (jose.length !== 64) return `${label(test)}: returned ${jose.length} bytes`;
  if (scalarOf(jose.subarray(0, 32)) !== reading.r) return `${label(test)}: r differs`;
  if (scalarOf(jose.subarray(32)) !== reading.s) return `${label(test)}: s differs`;

  const verifies = verifiesAsP1363(test, jose);
  if (test.result === 'invalid' && verifies) return `${label(test)}: an invalid case verifies`;
  if (test.result !== 'invalid' && !verifies) return `${label(test)}: does not verify`;
  return undefined;
}

describe('derToJose on Wycheproof DER vectors', () => {
  it('fixture holds all 484 cases', () => {
    expect(derFile.numberOfTests).toBe(484);
    expect(derFile.cases).toHaveLength(484);
    expect(countByResult(derFile.cases)).toEqual({ valid: 174, invalid: 310, acceptable: 0 });
  });

  it('every case behaves', () => {
    const failures = derFile.cases.map(checkDerCase).filter((failure) => failure !== undefined);
    expect(failures).toEqual([]);
  });

  it('valid cases convert and verify', () => {
    const valid = derFile.cases.filter((test) => test.result === 'valid');
    const failures = valid.filter((test) => !verifiesAsP1363(test, derToJose(test.sig)));
    expect(failures.map(label)).toEqual([]);
  });

  it('valid cases are canonical DER', () => {
    // Wycheproof's valid DER signatures are all minimal, so joseToDer must rebuild each exactly.
    const valid = derFile.cases.filter((test) => test.result === 'valid');
    const failures = valid.filter((test) => !joseToDer(derToJose(test.sig)).equals(test.sig));
    expect(failures.map(label)).toEqual([]);
  });

  it('invalid encodings are rejected with a code', () => {
    const badEncodings = derFile.cases.filter((test) => !canonicalReading(test.sig));
    const notRejected = badEncodings.filter(
      (test) => thrownBy(() => derToJose(test.sig))?.code !== 'ERR_SIGNATURE_DER_INVALID',
    );
    expect(notRejected.map(label)).toEqual([]);
    // The split of the 310 invalid cases: bad encodings or out-of-range values, against canonical
    // DER of in-range values whose signature is simply wrong.
    expect(badEncodings).toHaveLength(287);
  });

  it('no invalid case yields a verifying signature', () => {
    const invalid = derFile.cases.filter((test) => test.result === 'invalid');
    const converted = invalid.flatMap((test) => {
      const jose = thrownBy(() => derToJose(test.sig)) ? undefined : derToJose(test.sig);
      return jose ? [{ test, jose }] : [];
    });
    expect(converted).toHaveLength(23);
    const forged = converted.filter(({ test, jose }) => verifiesAsP1363(test, jose));
    expect(forged.map(({ test }) => label(test))).toEqual([]);
  });

  it('node:crypto rejects every invalid DER', () => {
    // Checks the fixture and OpenSSL itself, so that a passing case above is meaningful.
    const invalid = derFile.cases.filter((test) => test.result === 'invalid');
    const accepted = invalid.filter((test) => verifiesAsDer(test, test.sig));
    expect(accepted.map(label)).toEqual([]);
  });
});

/** What joseToDer must do with one P1363 case. */
function checkP1363Case(test: WycheproofCase): string | undefined {
  const error = thrownBy(() => joseToDer(test.sig));
  const inRange =
    test.sig.length === 64 &&
    [scalarOf(test.sig.subarray(0, 32)), scalarOf(test.sig.subarray(32))].every(
      (value) => value >= 1n && value < curveOrder,
    );

  if (error) {
    if (error.code !== 'ERR_SIGNATURE_JOSE_INVALID') return `${label(test)}: threw ${error}`;
    if (inRange) return `${label(test)}: rejected an in-range 64-byte signature`;
    return test.result === 'valid' ? `${label(test)}: rejected a valid case` : undefined;
  }

  if (!inRange) return `${label(test)}: accepted ${test.sig.length} bytes or an out-of-range value`;
  const der = joseToDer(test.sig);
  const expected = canonicalDer(
    scalarOf(test.sig.subarray(0, 32)),
    scalarOf(test.sig.subarray(32)),
  );
  if (!der.equals(expected)) return `${label(test)}: DER is not minimal`;
  if (!derToJose(der).equals(test.sig)) return `${label(test)}: does not round-trip`;

  const verifies = verifiesAsDer(test, der);
  if (test.result === 'invalid' && verifies) return `${label(test)}: an invalid case verifies`;
  if (test.result !== 'invalid' && !verifies) return `${label(test)}: does not verify as DER`;
  return undefined;
}

describe('joseToDer on Wycheproof P1363 vectors', () => {
  it('fixture holds all 262 cases', () => {
    expect(p1363File.numberOfTests).toBe(262);
    expect(p1363File.cases).toHaveLength(262);
    expect(countByResult(p1363File.cases)).toEqual({ valid: 173, invalid: 89, acceptable: 0 });
  });

  it('every case behaves', () => {
    const failures = p1363File.cases.map(checkP1363Case).filter((failure) => failure !== undefined);
    expect(failures).toEqual([]);
  });

  it('valid cases round-trip to DER that verifies', () => {
    const valid = p1363File.cases.filter((test) => test.result === 'valid');
    const failures = valid.filter((test) => {
      const der = joseToDer(test.sig);
      return !verifiesAsDer(test, der) || !derToJose(der).equals(test.sig);
    });
    expect(valid).toHaveLength(173);
    expect(failures.map(label)).toEqual([]);
  });

  it('wrong sizes are rejected with a code', () => {
    const wrongSize = p1363File.cases.filter((test) => test.sig.length !== 64);
    expect(wrongSize).toHaveLength(21);
    const notRejected = wrongSize.filter(
      (test) => thrownBy(() => joseToDer(test.sig))?.code !== 'ERR_SIGNATURE_JOSE_INVALID',
    );
    expect(notRejected.map(label)).toEqual([]);
  });
});
