/**
 * The ESM and CJS builds in dist/ each carry their own copy of the core, and both may end up in
 * one process. The key-scheme registry lives on globalThis under Symbol.for, so a scheme
 * registered through one copy must be found through the other, and errors from either copy must
 * be told apart by `code`.
 */
import { execFileSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';

const script = `
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const esm = await import(pathToFileURL('./dist/index.js').href);
const cjs = createRequire(import.meta.url)('./dist/index.cjs');

function adapter(name) {
  return {
    name,
    async createSigner(reference) {
      return { keyId: name + ':' + reference.rest };
    },
  };
}

esm.registerKeyScheme('fromesm', async () => adapter('esm-adapter'));
cjs.registerKeyScheme('fromcjs', async () => adapter('cjs-adapter'));

let cjsError;
try {
  cjs.parseKeyReference('');
} catch (error) {
  cjsError = error;
}

console.log(JSON.stringify({
  twoCopies: esm.registerKeyScheme !== cjs.registerKeyScheme,
  twoErrorClasses: esm.KmsJwtError !== cjs.KmsJwtError,
  esmSignerViaCjs: (await cjs.createSigner('fromesm:apple')).keyId,
  cjsSignerViaEsm: (await esm.createSigner('FROMCJS:siwa')).keyId,
  esmSchemes: esm.listKeySchemes(),
  cjsSchemes: cjs.listKeySchemes(),
  cjsErrorCode: cjsError.code,
  cjsErrorIsEsmInstance: cjsError instanceof esm.KmsJwtError,
  cjsErrorRecognisedByEsm: esm.isKmsJwtError(cjsError),
}));
`;

describe('ESM and CJS builds together', () => {
  let result: Record<string, unknown>;

  beforeAll(() => {
    const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    result = JSON.parse(output) as Record<string, unknown>;
  });

  it('are two separate copies', () => {
    expect(result.twoCopies).toBe(true);
    expect(result.twoErrorClasses).toBe(true);
  });

  it('share the key-scheme registry', () => {
    expect(result.esmSignerViaCjs).toBe('esm-adapter:apple');
    expect(result.cjsSignerViaEsm).toBe('cjs-adapter:siwa');
    expect(result.esmSchemes).toEqual(result.cjsSchemes);
    expect(result.esmSchemes).toEqual(expect.arrayContaining(['file', 'fromesm', 'fromcjs']));
  });

  it('raise errors told apart by code', () => {
    expect(result.cjsErrorCode).toBe('ERR_KEY_REFERENCE_INVALID');
    expect(result.cjsErrorIsEsmInstance).toBe(false);
    expect(result.cjsErrorRecognisedByEsm).toBe(true);
  });
});
