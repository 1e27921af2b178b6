/**
 * `kms-jwt public-key --key REF [--format pem|jwk|thumbprint]`: prints the public half of a
 * key, from any backend or from a local public key, certificate or JWK, and its RFC 7638
 * thumbprint. stdout carries the key alone in the chosen
 * format, so that it pipes into a file; the thumbprint goes to stderr, except with
 * `--format thumbprint`, which prints only the thumbprint on stdout.
 */
import { jwkThumbprint, publicKeyToJwk } from '../../jwk.js';
import {
  booleanValue,
  parseCommandArgs,
  requiredValue,
  stringValue,
  type FlagSpec,
} from '../args.js';
import { exitCodes, quotedWord, usageError } from '../errors.js';
import type { CliIo } from '../io.js';
import { keyFlags, loadPublicKeyOf } from '../keys.js';

const flags: Record<string, FlagSpec> = { ...keyFlags, format: { type: 'string' } };
const formats = ['pem', 'jwk', 'thumbprint'];

const help = `Usage: kms-jwt public-key --key REF [--format pem|jwk|thumbprint]

Prints the key's public half and its RFC 7638 SHA-256 thumbprint.

Options:
  --key REF               A .p8 path, file:PATH, env:NAME, awskms:, gcpkms: or pkcs11: reference.
                          A file or env: variable may also contain a PUBLIC KEY PEM, an X.509
                          certificate PEM or a public JWK
  --format FORMAT         pem (SPKI PUBLIC KEY, the default), jwk (one-line JSON with kty, crv, x
                          and y), or thumbprint (the thumbprint alone)
  --passphrase-env NAME   Variable holding the passphrase of an encrypted key file
  -h, --help              Show this help

With pem and jwk, stdout carries only the key, and "kms-jwt: thumbprint: ..." goes to stderr.
`;

/**
 * Runs `public-key` with the arguments after the command name.
 *
 * @example
 * await run(['--key', 'awskms:alias/apple-siwa', '--format', 'jwk'], io);
 */
export async function run(args: string[], io: CliIo): Promise<number> {
  const parsed = parseCommandArgs('public-key', args, flags, 0);
  if (booleanValue(parsed, 'help')) {
    io.out(help);
    return exitCodes.ok;
  }

  const reference = requiredValue(parsed, 'public-key', 'key');
  const format = stringValue(parsed, 'format') ?? 'pem';
  if (!formats.includes(format)) {
    const shown = quotedWord(format) ?? 'a value that is not a format name (not shown)';
    throw usageError('public-key', `--format must be pem, jwk or thumbprint, not ${shown}`);
  }

  const publicKey = await loadPublicKeyOf(reference, parsed, io);
  const thumbprint = jwkThumbprint(publicKey);
  if (format === 'thumbprint') {
    io.out(`${thumbprint}\n`);
    return exitCodes.ok;
  }

  const text =
    format === 'jwk'
      ? `${JSON.stringify(publicKeyToJwk(publicKey))}\n`
      : publicKey.export({ type: 'spki', format: 'pem' }).toString();
  io.out(text);
  io.note(`kms-jwt: thumbprint: ${thumbprint}`);
  return exitCodes.ok;
}
