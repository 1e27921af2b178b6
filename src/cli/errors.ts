/**
 * How the CLI reports failures: exit codes, the one-line `kms-jwt: error: [CODE] message` form
 * on stderr, and redaction of token and key text that must never reach a terminal or a log.
 */
import { escapeControlCharacters } from '../apple/identifiers.js';
import { KmsJwtError } from '../errors.js';
import { shortenForMessage } from '../message-text.js';

/** The documented exit codes of `kms-jwt`. */
export const exitCodes = {
  /** The command succeeded; for `verify`, the token is valid. */
  ok: 0,
  /** `verify` found the token invalid, or `inspect` found problems. */
  invalid: 1,
  /** The command line is wrong: an unknown command or option, or a missing or bad value. */
  usage: 2,
  /** The key or its backend failed: unreadable key, KMS or HSM error, missing SDK. */
  key: 3,
  /** The token's fields break the rules of its kind, so nothing was signed. */
  rejected: 4,
  /** Any other failure, such as a cache file that cannot be read. */
  failure: 5,
} as const;

/** A failure raised by the CLI itself, such as a usage error. */
export class CliError extends KmsJwtError {}

/**
 * Creates a usage error (exit code 2) that points at the command's help, naming what that help
 * lists: the options (the default), the commands, or the token kinds.
 *
 * @example
 * throw usageError('client-secret', '--team-id is required');
 */
export function usageError(
  command: string,
  problem: string,
  helpLists: 'options' | 'commands' | 'kinds' = 'options',
): CliError {
  const help = command === '' ? 'kms-jwt --help' : `kms-jwt ${command} --help`;
  return new CliError('ERR_CLI_USAGE', `${problem}. Run "${help}" for the ${helpLists}.`, {
    details: { command },
  });
}

/**
 * Quotes `text` for a usage error when it is a lower-case word, the shape of every command and
 * token kind name, cut to 200 characters. Returns undefined for anything else, because an
 * argument in a name's place may be a value typed too early: a key reference with a pin-value,
 * key text, a token or a PIN.
 *
 * @example
 * quotedWord('sign-everything'); // '"sign-everything"'
 * quotedWord('pkcs11:token=apple?pin-value=1234'); // undefined
 */
export function quotedWord(text: string): string | undefined {
  return /^[a-z][a-z0-9_-]*$/.test(text) ? `"${shortenForMessage(text)}"` : undefined;
}

/** Maps an error to its exit code, by code and class name so that either build's classes match. */
export function exitCodeFor(error: unknown): number {
  const code = codeOf(error);
  const name = error instanceof Error ? error.name : '';
  if (code === 'ERR_CLI_USAGE' || code === 'ERR_CLI_ENV_NOT_SET') return exitCodes.usage;
  if (code === 'ERR_CLI_IMPORT_TARGET') return exitCodes.usage;
  if (name === 'ClaimsError' || /^ERR_(CLAIMS|APPLE|DURATION)_/.test(code)) {
    return exitCodes.rejected;
  }
  if (['KeyError', 'BackendError', 'SignatureError'].includes(name)) return exitCodes.key;
  if (/^ERR_(KEY|PEER|BACKEND|SIGNATURE|AWS|GCP|PKCS11)_/.test(code)) return exitCodes.key;
  return exitCodes.failure;
}

/** Text that must be cut from any output line: the token given, or a passphrase. */
const secrets = new Set<string>();

/**
 * Registers a value, such as the token being verified, so that no error line repeats it.
 *
 * @example
 * registerSecret(token);
 */
export function registerSecret(value: string): void {
  if (value.length < 8) return;
  secrets.add(value);
  // Each part of a compact JWS is redacted on its own too, since a message may quote one part.
  for (const part of value.split('.')) if (part.length >= 16) secrets.add(part);
}

/**
 * Replaces registered secrets, JWS-shaped text and PEM blocks with placeholders. Library
 * messages carry no key text or token text by contract, and this is the CLI's second guard.
 */
export function redact(text: string): string {
  let result = text;
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    result = result.split(secret).join('[redacted]');
  }
  result = result.replace(
    /-----BEGIN [^-]+-----[\s\S]*?(-----END [^-]+-----|$)/g,
    '[PEM redacted]',
  );
  return result.replace(
    /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*(\.[A-Za-z0-9_-]*)?/g,
    '[JWS redacted]',
  );
}

/**
 * Formats the one line written to stderr for an error: `kms-jwt: error: [CODE] message`.
 * Line breaks inside a message are folded, so that every failure is exactly one line, and other
 * control and bidirectional characters are escaped, because a message may quote a server.
 */
export function formatErrorLine(error: unknown): string {
  const code = codeOf(error) || 'ERR_CLI_UNEXPECTED';
  const message = error instanceof Error ? error.message : textOf(error);
  const prefix = isCoded(error) ? '' : `${error instanceof Error ? error.name : 'Error'}: `;
  const oneLine = redact(`${prefix}${message}`)
    .replace(/\s*\n\s*/g, ' ')
    .trim();
  return `kms-jwt: error: [${code}] ${escapeControlCharacters(oneLine)}`;
}

/**
 * Formats the stack and cause chain for `KMS_JWT_DEBUG=1`, redacted like the error line. Each
 * error gets one line for its name and message, then its stack frames. A cause often carries a
 * server's text, so control and bidirectional characters are escaped and a line break in a
 * message cannot start a line of its own.
 */
export function formatDebugTrace(error: unknown): string {
  const lines: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && depth < maxTraceDepth; depth++) {
    const [headline, ...frames] = traceLines(current);
    lines.push(depth === 0 ? headline! : `caused by: ${headline!}`, ...frames);
    current = current instanceof Error ? current.cause : undefined;
  }
  return `${lines.join('\n')}\n`;
}

const maxTraceDepth = 8;

/** Returns the escaped `Name: message` line of one error, then its escaped stack frames. */
function traceLines(value: unknown): string[] {
  if (!(value instanceof Error)) return [escapeControlCharacters(redact(textOf(value)))];

  const headline = value.message === '' ? value.name : `${value.name}: ${value.message}`;
  const stack = typeof value.stack === 'string' ? value.stack : '';
  // V8 starts the stack with the headline as it was when the error was created.
  const afterHeadline = stack.startsWith(headline) ? stack.slice(headline.length) : stack;
  const frames = afterHeadline.split('\n').filter((line) => /^\s+at /.test(line));
  return [headline, ...frames].map((line) => escapeControlCharacters(redact(line)));
}

/** Converts a thrown value to text, even one that String() cannot convert. */
function textOf(value: unknown): string {
  try {
    return String(value);
  } catch {
    return 'a value that cannot be converted to text';
  }
}

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : '';
}

function isCoded(error: unknown): boolean {
  return error instanceof Error && codeOf(error).startsWith('ERR_');
}
