// No PIN in any message or event. The test collects every failure and warning that a real
// SoftHSM2 token can produce through the adapter, with the PIN given through each source. Then it
// searches the whole of each error (message, stack, details and cause chain) and each event.
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { adapter, createPkcs11Signer, importP8ToPkcs11 } from '../../adapters/pkcs11/index.js';
import { moduleRegistry } from '../../adapters/pkcs11/module.js';
import { parseKeyReference } from '../../src/key-uri.js';
import type { SignerEvent } from '../../src/signer.js';
import {
  createSoftHsm,
  createTestKey,
  describeWithSoftHsm,
  softHsmModulePath,
  userPin,
  type SoftHsm,
} from './softhsm.js';

const wrongPin = 'wrong-pin-55810237';
const otherPin = 'other-pin-66021948';
const key = createTestKey();
const bareKey = createTestKey();
const failures: unknown[] = [];
const events: SignerEvent[] = [];
const onEvent = (event: SignerEvent) => events.push(event);
let hsm: SoftHsm;

const modulePart = `module-path=${softHsmModulePath}`;

function uriFor(token: string, object: string, query = ''): string {
  return `pkcs11:token=${token};object=${object}?${modulePart}${query}`;
}

/** Runs `attempt`, which must fail, and keeps its error. */
async function collectFailure(attempt: () => Promise<unknown>): Promise<void> {
  let caught: unknown;
  try {
    await attempt();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeDefined();
  failures.push(caught);
}

/** Joins the text an error carries: message, stack, details and each cause, also as JSON. */
function textOf(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && depth < 8; depth += 1) {
    if (current instanceof Error) {
      parts.push(current.message, current.stack ?? '', String(current));
      parts.push(JSON.stringify((current as { details?: unknown }).details ?? {}));
      parts.push(JSON.stringify(current));
      current = current.cause;
    } else {
      parts.push(String(current), JSON.stringify(current));
      current = undefined;
    }
  }
  return parts.join('\n');
}

describeWithSoftHsm('pkcs11 PIN secrecy', () => {
  let pinFile: string;
  let sharedPinFile: string;

  beforeAll(() => {
    hsm = createSoftHsm();
    hsm.createToken('secrecy');
    hsm.createToken('secrecy-wrong');
    hsm.importPem('secrecy', key.pem, { label: 'siwa', id: '01' });
    hsm.importPem('secrecy', bareKey.pem, { label: 'bare', id: '02', noPublicKey: true });
    pinFile = join(hsm.folder, 'pin');
    writeFileSync(pinFile, userPin, { mode: 0o600 });
    sharedPinFile = join(hsm.folder, 'pin-shared');
    writeFileSync(sharedPinFile, userPin);
    chmodSync(sharedPinFile, 0o644);
  });

  afterAll(() => {
    // The folder goes even when a test left a signer open, which the check then reports.
    const openModules = moduleRegistry().modules.size;
    hsm?.remove();
    expect(openModules).toBe(0);
  });

  it('failures and warnings carry no PIN', async () => {
    const withValue = `&pin-value=${userPin}`;
    const withSource = `&pin-source=${pinFile}`;
    process.env.KMS_JWT_PKCS11_PIN = userPin;
    try {
      for (const query of [withValue, withSource, '']) {
        const options = { onEvent };
        await collectFailure(() => createPkcs11Signer(uriFor('nope', 'siwa', query), options));
        await collectFailure(() => createPkcs11Signer(uriFor('secrecy', 'nope', query), options));
        await collectFailure(() =>
          createPkcs11Signer(
            `pkcs11:token=secrecy;object=siwa;odd=1?${modulePart}${query}`,
            options,
          ),
        );
        await collectFailure(() =>
          createPkcs11Signer(
            `pkcs11:token=secrecy;object=siwa?module-path=/no.so${query}`,
            options,
          ),
        );
      }

      // A PIN option and a wrong PIN on the token that keeps no keys.
      await collectFailure(() =>
        createPkcs11Signer(uriFor('secrecy-wrong', 'siwa'), { pin: wrongPin, onEvent }),
      );
      await collectFailure(() =>
        createPkcs11Signer(uriFor('secrecy-wrong', 'siwa', `&pin-value=${wrongPin}`), { onEvent }),
      );

      // A second signer with another PIN while the first keeps the token logged in.
      const first = await createPkcs11Signer(uriFor('secrecy', 'siwa', withSource), { onEvent });
      await collectFailure(() =>
        createPkcs11Signer(uriFor('secrecy', 'siwa'), { pin: otherPin, onEvent }),
      );

      // A key without a public-key object, and an import onto an existing label.
      const bare = await createPkcs11Signer(uriFor('secrecy', 'bare', withValue), { onEvent });
      await collectFailure(() => bare.getPublicKey());
      await bare.close();
      await collectFailure(() => bare.sign(Buffer.from('a.b')));
      await collectFailure(() =>
        importP8ToPkcs11(createTestKey().privateKey, uriFor('secrecy', 'siwa', withValue), {
          onEvent,
        }),
      );
      await collectFailure(() =>
        adapter.importKey!({
          privateKey: createTestKey().privateKey,
          target: parseKeyReference(uriFor('secrecy', 'siwa')),
          options: { pin: userPin, onEvent },
        }),
      );

      // Warnings: a PIN in the URI and a PIN file that others can read.
      const shared = await createPkcs11Signer(
        uriFor('secrecy', 'siwa', `&pin-source=${sharedPinFile}`),
        { onEvent },
      );
      await shared.close();
      await first.close();
    } finally {
      delete process.env.KMS_JWT_PKCS11_PIN;
    }

    const codes = new Set(failures.map((error) => (error as { code?: string }).code));
    expect([...codes].sort()).toEqual([
      'ERR_PKCS11_KEY_NOT_FOUND',
      'ERR_PKCS11_MODULE_NOT_FOUND',
      'ERR_PKCS11_OBJECT_EXISTS',
      'ERR_PKCS11_PIN_INCORRECT',
      'ERR_PKCS11_PIN_MISMATCH',
      'ERR_PKCS11_PUBLIC_KEY_MISSING',
      'ERR_PKCS11_SIGNER_CLOSED',
      'ERR_PKCS11_TOKEN_NOT_FOUND',
    ]);
    expect(new Set(events.map((event) => event.code))).toEqual(
      new Set(['pin-value-in-uri', 'pin-file-permissions', 'pin-count-low']),
    );

    // The search reaches the text: the label of the missing token is in it, and the CKR_ name.
    const allText = failures.map(textOf).join('\n');
    expect(allText).toContain('"nope"');
    expect(allText).toContain('CKR_PIN_INCORRECT');
    for (const pin of [userPin, wrongPin, otherPin]) {
      for (const error of failures) expect(textOf(error)).not.toContain(pin);
      expect(JSON.stringify(events)).not.toContain(pin);
      for (const event of events) expect(String(event.message)).not.toContain(pin);
    }
  });
});
