/**
 * Reading a compact JWS (RFC 7515 §7.1) given on the command line, and printing its times for
 * people. Nothing here echoes token text: a malformed token is described by position and size.
 */
import { base64urlDecode } from '../base64url.js';
import { usageError } from './errors.js';
import type { CliIo } from './io.js';

/** The parts of a compact JWS, decoded. */
export interface DecodedJws {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  /** `BASE64URL(header) || '.' || BASE64URL(payload)`, the bytes the signature covers. */
  signingInput: Buffer;
  signature: Buffer;
}

/**
 * Decodes a compact JWS without checking its signature, or returns the reason it is malformed.
 *
 * @example
 * const decoded = decodeCompactJws(token);
 * if (typeof decoded === 'string') console.error(decoded);
 */
export function decodeCompactJws(token: string): DecodedJws | string {
  const parts = token.split('.');
  if (parts.length !== 3) {
    return `the token has ${countParts(parts.length)}, but a compact JWS has 3`;
  }

  const [headerText, payloadText, signatureText] = parts as [string, string, string];
  const header = decodeJsonPart(headerText, 'header');
  if (typeof header === 'string') return header;
  const claims = decodeJsonPart(payloadText, 'payload');
  if (typeof claims === 'string') return claims;

  const signature = base64urlDecode(signatureText);
  if (signature === undefined) return 'the signature part is not base64url without padding';
  const signingInput = Buffer.from(`${headerText}.${payloadText}`, 'ascii');
  return { header, claims, signingInput, signature };
}

function countParts(count: number): string {
  return count === 1 ? '1 dot-separated part' : `${count} dot-separated parts`;
}

function decodeJsonPart(text: string, name: string): Record<string, unknown> | string {
  const bytes = base64urlDecode(text);
  if (bytes === undefined || text === '') {
    return `the ${name} part is not base64url without padding`;
  }

  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    // JSON.parse quotes the input in its message, so its text is not passed on.
    return `the ${name} part is not valid JSON`;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return `the ${name} part is not a JSON object`;
  }
  return value as Record<string, unknown>;
}

// A token of any Apple kind is far smaller, so this cap only stops a wrong file or endless input.
const maxStdinBytes = 64 * 1024;

/**
 * Reads the TOKEN argument: the text itself, or all of stdin when it is `-`. Surrounding white
 * space, such as the newline that `echo` adds, is removed. Whitespace inside the token and stdin
 * over 64 KiB are usage errors.
 *
 * @example
 * const token = await readTokenArgument('verify', positionals[0], io);
 */
export async function readTokenArgument(
  command: string,
  argument: string | undefined,
  io: CliIo,
): Promise<string> {
  if (argument === undefined) {
    throw usageError(command, 'TOKEN is missing; give the token, or - to read it from stdin');
  }

  const text = argument === '-' ? await io.readStdin(maxStdinBytes) : argument;
  if (text === undefined) {
    throw usageError(
      command,
      `stdin is larger than ${maxStdinBytes} bytes, far more than a token. Pipe in the token alone`,
    );
  }
  const token = text.trim();
  if (token === '') {
    const where = argument === '-' ? 'stdin is empty' : 'TOKEN is empty';
    throw usageError(command, `${where}; give a compact JWS`);
  }
  assertOneToken(command, token);
  return token;
}

/** Rejects whitespace inside a token, which is two tokens or one wrapped across lines. */
function assertOneToken(command: string, token: string): void {
  if (!/\s/.test(token)) return;
  // A token copied from an Authorization header keeps its scheme, which Apple's APIs expect there
  // but which is not part of the JWS.
  if (/^bearer\s+\S+$/i.test(token)) {
    throw usageError(command, 'TOKEN starts with "Bearer ". Remove the "Bearer " prefix');
  }
  const lines = token.split(/\r\n|\r|\n/).length;
  const found =
    lines > 1
      ? `TOKEN spans ${lines} lines`
      : 'TOKEN contains whitespace, which no compact JWS has';
  throw usageError(command, `${found}. Give exactly one token, on one line`);
}

/**
 * Formats a NumericDate as `1767225600 (2026-01-01T00:00:00Z, in 3 days)`, or returns the value
 * as JSON when it is not a finite number.
 */
export function formatNumericDate(value: unknown, nowMs: number): string {
  if (typeof value !== 'number' || !Number.isFinite(value)) return JSON.stringify(value);
  const milliseconds = value * 1000;
  if (Math.abs(milliseconds) > 8.64e15) return `${value} (out of the Date range)`;

  const iso = new Date(milliseconds).toISOString().replace('.000Z', 'Z');
  return `${value} (${iso}, ${formatRelative(value - nowMs / 1000)})`;
}

/** Formats an offset in seconds from now, such as `in 179 days` or `5 minutes ago`. */
export function formatRelative(offsetSeconds: number): string {
  const magnitude = Math.abs(offsetSeconds);
  if (magnitude < 1) return 'now';

  const units: Array<[string, number]> = [
    ['day', 86_400],
    ['hour', 3_600],
    ['minute', 60],
    ['second', 1],
  ];
  const [unit, size] = units.find(([, seconds]) => magnitude >= seconds) ?? ['second', 1];
  const count = Math.floor(magnitude / size);
  const text = `${count} ${unit}${count === 1 ? '' : 's'}`;
  return offsetSeconds > 0 ? `in ${text}` : `${text} ago`;
}

/** Returns true when bytes look like a DER `Ecdsa-Sig-Value` rather than the JOSE r||s form. */
export function looksLikeDerSignature(signature: Uint8Array): boolean {
  // A P-256 DER signature is 8 to 72 bytes: SEQUENCE, a short length covering the rest, INTEGER.
  return (
    signature.length >= 8 &&
    signature.length <= 72 &&
    signature[0] === 0x30 &&
    signature[1] === signature.length - 2 &&
    signature[2] === 0x02
  );
}
