/**
 * Armour shapes beyond the repair table: a doubled BEGIN line, one block inside another, and a
 * malformed armour line inside a body. Each is rejected with an error that names the armour,
 * not the base64 alphabet that the stray dashes happen to belong to.
 */
import { describe, expect, it } from 'vitest';
import { createPemSigner, loadPublicKey } from '../../adapters/pem/index.js';
import { createP256Fixture, expectNoKeyText, rejectionOf } from './support.js';

// Several keys, so that no row depends on which base64 characters one body happens to contain.
const keys = Array.from({ length: 8 }, () => createP256Fixture());
const begin = '-----BEGIN PRIVATE KEY-----';
const end = '-----END PRIVATE KEY-----';

function shapesOf(pem: string): Array<[string, string]> {
  const body = pem.trim().split('\n').slice(1, -1).join('\n');
  return [
    ['doubled armour', `${begin}\n${begin}\n${body}\n${end}\n${end}\n`],
    ['doubled BEGIN only', `${begin}\n${begin}\n${body}\n${end}\n`],
    ['a block inside another', `${begin}\n${body.slice(0, 64)}\n${pem}${end}\n`],
    ['four-dash BEGIN inside', `${begin}\n----BEGIN PRIVATE KEY----\n${body}\n${end}\n`],
  ];
}

describe('armour inside a block', () => {
  it.each(shapesOf(keys[0]!.pkcs8Pem).map(([shape]) => [shape]))('rejects %s', async (shape) => {
    for (const key of keys) {
      const input = new Map(shapesOf(key.pkcs8Pem)).get(shape)!;
      const error = await rejectionOf(createPemSigner({ pem: input }));

      expect(error.code).toBe('ERR_KEY_ARMOUR_INVALID');
      expect(error.message).toMatch(/BEGIN/);
      expectNoKeyText(error, key.pkcs8Pem);
    }
  });

  it('rejects doubled armour for verifying', async () => {
    const key = keys[0]!;
    const [, input] = shapesOf(key.pkcs8Pem)[0]!;
    const error = await rejectionOf(loadPublicKey({ pem: input }));

    expect(error.code).toBe('ERR_KEY_ARMOUR_INVALID');
  });
});
