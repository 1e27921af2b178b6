/**
 * parseDuration: whole seconds with the units s, m, h, d and w, and a coded error for anything
 * else, including fractions and values past Number.MAX_SAFE_INTEGER.
 */
import { describe, expect, it } from 'vitest';
import { parseDuration } from '../../src/duration.js';

describe('parseDuration', () => {
  it.each([
    ['0', 0],
    ['3600', 3600],
    ['30s', 30],
    ['20m', 1200],
    ['12h', 43_200],
    ['180d', 15_552_000],
    ['2w', 1_209_600],
    ['1h30m', 5400],
    ['1d1h1m1s', 90_061],
    ['1m1m', 120],
  ])('reads %s as %i seconds', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it.each([
    '',
    ' 1h',
    '1h ',
    '1.5h',
    '1H',
    '-1s',
    '1y',
    'h',
    '1 h',
    '10 days',
    '1e3',
    '9'.repeat(20),
  ])('rejects %j', (text) => {
    expect(() => parseDuration(text)).toThrow(
      expect.objectContaining({ code: 'ERR_DURATION_INVALID' }),
    );
  });

  it('rejects a sum past the safe integer range', () => {
    expect(() => parseDuration(`${'9'.repeat(15)}w`)).toThrow(
      expect.objectContaining({ code: 'ERR_DURATION_INVALID' }),
    );
  });

  it('shortens a long value in the message', () => {
    const text = `${'1'.repeat(100)}x`;
    try {
      parseDuration(text);
      expect.unreachable();
    } catch (error) {
      const message = (error as Error).message;
      expect(message).not.toContain(text);
      expect(message).toContain('…');
    }
  });

  it('throws TypeError for a number', () => {
    expect(() => parseDuration(3600 as never)).toThrow(TypeError);
  });
});
