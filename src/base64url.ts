/** Base64url without padding (RFC 7515 §2 and RFC 4648 §5). */

/** Encodes bytes or a UTF-8 string as base64url without padding. */
export function base64urlEncode(input: Uint8Array | string): string {
  const bytes =
    typeof input === 'string'
      ? Buffer.from(input, 'utf8')
      : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  return bytes.toString('base64url');
}

/** Decodes strict base64url without padding, returning undefined for any other text. */
export function base64urlDecode(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return undefined;
  const bytes = Buffer.from(text, 'base64url');
  // Reject non-canonical encodings whose unused trailing bits are set.
  return bytes.toString('base64url') === text ? bytes : undefined;
}
