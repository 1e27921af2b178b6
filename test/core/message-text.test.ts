// shortenForMessage: values up to the limit stay whole, longer ones keep their start and end.
import { describe, expect, it } from 'vitest';
import { maxQuotedLength, shortenForMessage } from '../../src/message-text.js';

describe('shortenForMessage', () => {
  it('keeps a value at the limit', () => {
    const text = 'a'.repeat(maxQuotedLength);
    expect(shortenForMessage(text)).toBe(text);
  });

  it('cuts a 100 KB path around a count', () => {
    const path = `/tmp/${'a'.repeat(100_000)}/AuthKey_ABC123DEFG.p8`;
    const shortened = shortenForMessage(path);
    expect(shortened.length).toBeLessThan(250);
    expect(shortened.startsWith('/tmp/aaa')).toBe(true);
    expect(shortened.endsWith('aaa/AuthKey_ABC123DEFG.p8')).toBe(true);
    expect(shortened).toContain(`[... ${path.length - 180} characters cut ...]`);
  });

  it('never splits a surrogate pair', () => {
    const text = '😀'.repeat(300);
    const shortened = shortenForMessage(text);
    expect(shortened).toBe(`${'😀'.repeat(60)}[... 120 characters cut ...]${'😀'.repeat(120)}`);
  });

  it('keeps a value of few code points', () => {
    // 150 emoji are 300 UTF-16 units but only 150 characters.
    const text = '😀'.repeat(150);
    expect(shortenForMessage(text)).toBe(text);
  });
});
