/**
 * A variable name given where a path belongs: `--key APPLE_PRIVATE_KEY` or `--key
 * '$APPLE_PRIVATE_KEY'` instead of `--key env:APPLE_PRIVATE_KEY`. When no such file exists but
 * the variable is set, the error names the `env:` reference to use, and never the variable's value.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createPemSigner } from '../../adapters/pem/index.js';
import { createSigner } from '../../src/key-uri.js';
import { createP256Fixture, expectNoKeyText, rejectionOf } from './support.js';

const key = createP256Fixture();
const variable = 'KMS_JWT_TEST_ENV_NAME_AS_PATH';

afterEach(() => {
  delete process.env[variable];
});

describe('variable name as a path', () => {
  it.each([
    ['a bare name', variable],
    ['a name after $', `$${variable}`],
    ['a name after file:', `file:${variable}`],
  ])('suggests env: for %s', async (_shape, reference) => {
    process.env[variable] = key.pkcs8Pem;

    const error = await rejectionOf(createSigner(reference));

    expect(error.code).toBe('ERR_KEY_FILE_NOT_FOUND');
    expect(error.message).toContain(`use env:${variable}`);
    expectNoKeyText(error, key.pkcs8Pem);
  });

  it('suggests env: for a { path } source', async () => {
    process.env[variable] = key.pkcs8Pem;

    const error = await rejectionOf(createPemSigner({ path: variable }));

    expect(error.code).toBe('ERR_KEY_FILE_NOT_FOUND');
    expect(error.message).toContain(`{ env: '${variable}' }`);
  });

  it('suggests nothing when the variable is unset', async () => {
    const error = await rejectionOf(createSigner(variable));

    expect(error.code).toBe('ERR_KEY_FILE_NOT_FOUND');
    expect(error.message).not.toContain('env:');
  });

  it('suggests nothing for a path with a folder', async () => {
    process.env[variable] = key.pkcs8Pem;

    const error = await rejectionOf(createSigner(`./keys/${variable}`));

    expect(error.code).toBe('ERR_KEY_FILE_NOT_FOUND');
    expect(error.message).not.toContain('env:');
  });
});
