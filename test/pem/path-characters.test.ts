/**
 * Key file paths with characters that a message must not print as they are: a NUL, which no
 * file name can contain, and terminal control characters such as ESC, which would reach the
 * user's terminal through the CLI's error line.
 */
import { describe, expect, it } from 'vitest';
import { createPemSigner } from '../../adapters/pem/index.js';
import { createSigner } from '../../src/key-uri.js';
import { rejectionOf } from './support.js';

describe('key file path characters', () => {
  it('names a NUL in the path', async () => {
    const error = await rejectionOf(createSigner('keys/AuthKey\0.p8'));

    expect(error.code).toBe('ERR_KEY_FILE_UNREADABLE');
    expect(error.message).toMatch(/NUL character/);
    expect(error.message).not.toContain('\0');
  });

  it.each([
    ['ESC', 'keys/\u001b[2J\u001b]0;owned\u0007AuthKey.p8'],
    ['a line break', 'keys/first\nsecond.p8'],
    ['C1 CSI', 'keys/\u009b2JAuthKey.p8'],
  ])('escapes %s in messages', async (_name, path) => {
    const error = await rejectionOf(createPemSigner({ path }));

    expect(error.code).toBe('ERR_KEY_FILE_NOT_FOUND');
    expect(error.message).not.toMatch(/\p{Cc}/u);
    expect(error.message).toContain('keys/');
  });

  it('cuts a 100 KB path in messages', async () => {
    const path = `/tmp/${'a'.repeat(100_000)}/AuthKey_ABC123DEFG.p8`;
    const error = await rejectionOf(createPemSigner({ path }));

    expect(error.code).toBe('ERR_KEY_FILE_UNREADABLE');
    expect(error.message.length).toBeLessThan(500);
    expect(error.message).toContain('characters cut');
    expect(error.message).toContain('aaa/AuthKey_ABC123DEFG.p8');
    // details keep the whole path for code that needs it; only the text for people is cut.
    expect((error as { details?: { path?: unknown } }).details?.path).toBe(path);
  });
});
