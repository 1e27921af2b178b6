// Importing a .p8 into a real SoftHSM2 token. The imported key signs, and a separate process reads
// its protection attributes back from the token. An existing label or ID is overwritten only on
// request, and bad targets fail before anything is written.
import { execFileSync } from 'node:child_process';
import { createHash, verify, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createPkcs11Signer, importP8ToPkcs11 } from '../../adapters/pkcs11/index.js';
import { moduleRegistry } from '../../adapters/pkcs11/module.js';
import {
  createSoftHsm,
  createTestKey,
  describeWithSoftHsm,
  softHsmModulePath,
  userPin,
  type SoftHsm,
} from './softhsm.js';

const options = { pin: userPin };
const modulePart = `module-path=${softHsmModulePath}`;
let hsm: SoftHsm;

function target(object: string, id?: string): string {
  const idPart = id === undefined ? '' : `;id=%${id}`;
  return `pkcs11:token=import-tests;object=${object}${idPart}?${modulePart}`;
}

async function signsWith(reference: string, publicKey: KeyObject): Promise<boolean> {
  const signer = await createPkcs11Signer(reference, options);
  const input = Buffer.from('imported.key');
  const signature = await signer.sign(input);
  await signer.close();
  return verify('sha256', input, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature);
}

// Reads attributes with pkcs11js in a process of its own, so that nothing of the adapter is used.
const readerScript = `
const { PKCS11 } = require(process.env.BINDING);
const p11 = new PKCS11();
p11.load(process.env.MODULE);
p11.C_Initialize();
const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === 'import-tests');
const session = p11.C_OpenSession(slot, 4);
p11.C_Login(session, 1, process.env.PIN);
const objects = [];
p11.C_FindObjectsInit(session, [{ type: 3, value: process.env.LABEL }]);
for (let h = p11.C_FindObjects(session); h; h = p11.C_FindObjects(session)) objects.push(h);
p11.C_FindObjectsFinal(session);
const flags = { TOKEN: 1, PRIVATE: 2, SENSITIVE: 0x103, SIGN: 0x108, EXTRACTABLE: 0x162,
  ALWAYS_SENSITIVE: 0x165, NEVER_EXTRACTABLE: 0x164 };
const result = objects.map((handle) => {
  const [cls] = p11.C_GetAttributeValue(session, handle, [{ type: 0 }]);
  const entry = { class: cls.value.readUInt32LE(0) };
  if (entry.class !== 3) return entry;
  for (const [name, type] of Object.entries(flags)) {
    entry[name] = p11.C_GetAttributeValue(session, handle, [{ type }])[0].value[0] === 1;
  }
  try {
    p11.C_GetAttributeValue(session, handle, [{ type: 0x11 }]);
    entry.value = 'readable';
  } catch (error) {
    entry.value = error.message;
  }
  return entry;
});
p11.C_Logout(session);
p11.C_Finalize();
console.log(JSON.stringify(result));
`;

interface ReadBack {
  class: number;
  [attribute: string]: unknown;
}

function readObjects(label: string): ReadBack[] {
  const output = execFileSync(process.execPath, ['-e', readerScript], {
    encoding: 'utf8',
    env: {
      ...process.env,
      BINDING: createRequire(import.meta.url).resolve('pkcs11js'),
      MODULE: softHsmModulePath,
      PIN: userPin,
      LABEL: label,
    },
  });
  return JSON.parse(output) as ReadBack[];
}

describeWithSoftHsm('pkcs11 import', () => {
  beforeAll(() => {
    hsm = createSoftHsm();
    hsm.createToken('import-tests');
  });

  afterAll(() => {
    // The folder goes even when a test left a signer open, which the check then reports.
    const openModules = moduleRegistry().modules.size;
    hsm?.remove();
    expect(openModules).toBe(0);
  });

  it('import then sign', async () => {
    const key = createTestKey();
    const result = await importP8ToPkcs11(key.privateKey, target('siwa', 'a1'), options);

    expect(result.reference).toBe(
      `pkcs11:token=import-tests;object=siwa;id=%a1;type=private?${modulePart}`,
    );
    expect(result.publicKey.export({ format: 'jwk' })).toEqual(
      key.publicKey.export({ format: 'jwk' }),
    );
    expect(result.details).toMatchObject({ token: 'import-tests', object: 'siwa', id: 'a1' });
    expect(await signsWith(result.reference, key.publicKey)).toBe(true);

    const signer = await createPkcs11Signer(result.reference, options);
    const fromToken = await signer.getPublicKey({ refresh: true });
    await signer.close();
    expect(fromToken.export({ format: 'jwk' })).toEqual(key.publicKey.export({ format: 'jwk' }));
  });

  it('imported key reads back sensitive and not extractable', async () => {
    const key = createTestKey();
    await importP8ToPkcs11(key.privateKey, target('protected', 'b2'), options);
    const objects = readObjects('protected');

    expect(objects.map((object) => object.class).sort()).toEqual([2, 3]);
    const privateKey = objects.find((object) => object.class === 3)!;
    expect(privateKey.SENSITIVE).toBe(true);
    expect(privateKey.EXTRACTABLE).toBe(false);
    expect(privateKey.TOKEN).toBe(true);
    expect(privateKey.PRIVATE).toBe(true);
    expect(privateKey.SIGN).toBe(true);
    expect(privateKey.value).toBe('CKR_ATTRIBUTE_SENSITIVE');
    // Imported, not generated on the token, so PKCS#11 reports neither as always true.
    expect(privateKey.ALWAYS_SENSITIVE).toBe(false);
    expect(privateKey.NEVER_EXTRACTABLE).toBe(false);
  });

  it('import refuses to overwrite a label or an ID', async () => {
    const first = createTestKey();
    const second = createTestKey();
    const { reference } = await importP8ToPkcs11(first.privateKey, target('kept', 'c3'), options);

    for (const clash of [target('kept', 'c4'), target('other-label', 'c3'), target('kept')]) {
      await expect(importP8ToPkcs11(second.privateKey, clash, options)).rejects.toMatchObject({
        code: 'ERR_PKCS11_OBJECT_EXISTS',
        message: expect.stringContaining('Nothing was written'),
      });
    }
    expect(readObjects('kept')).toHaveLength(2);
    expect(readObjects('other-label')).toHaveLength(0);
    expect(await signsWith(reference, first.publicKey)).toBe(true);
  });

  it('overwrite replaces the old objects', async () => {
    const first = createTestKey();
    const second = createTestKey();
    await importP8ToPkcs11(first.privateKey, target('replaced', 'd5'), options);
    const result = await importP8ToPkcs11(second.privateKey, target('replaced', 'd5'), {
      ...options,
      overwrite: true,
    });

    expect(result.details.replacedObjects).toBe('2');
    expect(readObjects('replaced')).toHaveLength(2);
    expect(await signsWith(result.reference, second.publicKey)).toBe(true);
  });

  it('ID defaults to the SHA-1 of the public point', async () => {
    const key = createTestKey();
    const result = await importP8ToPkcs11(key.privateKey, target('derived-id'), options);
    const jwk = key.publicKey.export({ format: 'jwk' });
    const point = Buffer.concat([
      Buffer.from([0x04]),
      Buffer.from(jwk.x!, 'base64url'),
      Buffer.from(jwk.y!, 'base64url'),
    ]);
    expect(result.details.id).toBe(createHash('sha1').update(point).digest('hex'));
    expect(await signsWith(result.reference, key.publicKey)).toBe(true);
  });

  it('printed reference carries no PIN', async () => {
    const key = createTestKey();
    const uri = `${target('pin-in-uri', 'e6')}&pin-value=${userPin}`;
    const result = await importP8ToPkcs11(key.privateKey, uri, {});
    expect(result.reference).not.toContain(userPin);
    expect(result.reference).not.toContain('pin-value');
    expect(JSON.stringify(result.details)).not.toContain(userPin);
  });

  it('import without a PIN', async () => {
    const saved = process.env.KMS_JWT_PKCS11_PIN;
    delete process.env.KMS_JWT_PKCS11_PIN;
    try {
      const attempt = importP8ToPkcs11(createTestKey().privateKey, target('no-pin', 'f7'));
      await expect(attempt).rejects.toMatchObject({ code: 'ERR_PKCS11_PIN_MISSING' });
    } finally {
      if (saved !== undefined) process.env.KMS_JWT_PKCS11_PIN = saved;
    }
    expect(readObjects('no-pin')).toHaveLength(0);
  });

  it('import of a P-384 key', async () => {
    const attempt = importP8ToPkcs11(createTestKey('p384').privateKey, target('p384'), options);
    await expect(attempt).rejects.toMatchObject({
      code: 'ERR_KEY_NOT_P256',
      message: expect.stringContaining('EC secp384r1'),
    });
  });

  it('import target without an object label', async () => {
    const uri = `pkcs11:token=import-tests;id=%99?${modulePart}`;
    const attempt = importP8ToPkcs11(createTestKey().privateKey, uri, options);
    await expect(attempt).rejects.toMatchObject({
      code: 'ERR_KEY_REFERENCE_INVALID',
      message: expect.stringContaining('no object=LABEL'),
    });
  });

  it('import of something other than a private key', async () => {
    const publicOnly = createTestKey().publicKey;
    await expect(importP8ToPkcs11(publicOnly, target('wrong-input'), options)).rejects.toThrow(
      TypeError,
    );
  });
});
