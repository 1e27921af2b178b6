/**
 * `kms-jwt verify TOKEN --key REF|PUBLIC-KEY-FILE`: checks an ES256 token's signature (RFC 7515
 * §5.2 with RFC 7518 §3.4), its `exp` and `nbf`, and optionally its `aud`, `iss` and `sub`.
 * Exit code 0 means valid, 1 invalid (with the reason on stderr). Only the 64-byte r||s
 * signature is accepted, because that is the only form Apple accepts.
 */
import { isValidSignature } from '../../jws.js';
import { charactersIfLonger } from '../../message-text.js';
import {
  booleanValue,
  parseCommandArgs,
  requiredValue,
  stringValue,
  type FlagSpec,
  type ParsedArgs,
} from '../args.js';
import { exitCodes, registerSecret } from '../errors.js';
import type { CliIo } from '../io.js';
import { keyFlags, loadPublicKeyOf } from '../keys.js';
import {
  decodeCompactJws,
  formatRelative,
  looksLikeDerSignature,
  readTokenArgument,
  type DecodedJws,
} from '../token-text.js';

const flags: Record<string, FlagSpec> = {
  ...keyFlags,
  aud: { type: 'string' },
  iss: { type: 'string' },
  sub: { type: 'string' },
};

const help = `Usage: kms-jwt verify TOKEN --key REF|PUBLIC-KEY-FILE [--aud A] [--iss I] [--sub S]

Checks the token's ES256 signature, that it has not expired (exp) and is already valid (nbf),
and each claim given. TOKEN "-" reads the token from stdin, which keeps it out of ps output and
shell history.

Options:
  --key REF               A key reference (file, env:, awskms:, gcpkms:, pkcs11:). A file or
                          env: variable may contain a PUBLIC KEY PEM, an X.509 certificate PEM or
                          a JWK
  --aud VALUE             Expected audience: aud must equal it, or contain it when a list
  --iss VALUE             Expected issuer (iss), compared exactly
  --sub VALUE             Expected subject (sub), compared exactly
  --passphrase-env NAME   Variable holding the passphrase of an encrypted private key file
  -h, --help              Show this help

Prints "valid" on stdout and exits 0, or prints the reason on stderr and exits 1.
`;

/**
 * Runs `verify` with the arguments after the command name.
 *
 * @example
 * await run(['-', '--key', 'AuthKey_ABC123DEFG.p8', '--aud', 'https://appleid.apple.com'], io);
 */
export async function run(args: string[], io: CliIo): Promise<number> {
  const parsed = parseCommandArgs('verify', args, flags, 1);
  if (booleanValue(parsed, 'help')) {
    io.out(help);
    return exitCodes.ok;
  }

  const reference = requiredValue(parsed, 'verify', 'key');
  const token = await readTokenArgument('verify', parsed.positionals[0], io);
  registerSecret(token);

  const decoded = decodeCompactJws(token);
  if (typeof decoded === 'string') return invalid(io, decoded);
  const shapeProblem = signatureShapeProblem(decoded);
  if (shapeProblem !== undefined) return invalid(io, shapeProblem);

  const publicKey = await loadPublicKeyOf(reference, parsed, io);
  if (!isValidSignature(publicKey, decoded.signingInput, decoded.signature)) {
    return invalid(
      io,
      'the signature does not verify against the key. The token was signed by another key, or ' +
        'changed after signing. Check that --key is the key its kid names: the two keys match ' +
        'when "kms-jwt public-key --key REF --format thumbprint" prints the same value for both',
    );
  }

  const claimProblem = claimsProblem(decoded.claims, parsed, io.now() / 1000);
  if (claimProblem !== undefined) return invalid(io, claimProblem);
  io.out('valid\n');
  return exitCodes.ok;
}

function invalid(io: CliIo, reason: string): number {
  io.note(`kms-jwt: invalid: ${reason}`);
  return exitCodes.invalid;
}

function signatureShapeProblem(decoded: DecodedJws): string | undefined {
  const alg = decoded.header.alg;
  if (alg !== 'ES256') return `header alg is ${JSON.stringify(alg)}, but only ES256 is accepted`;
  if (decoded.header.crit !== undefined) {
    // RFC 7515 §4.1.11: a verifier rejects a token whose crit names an extension it does not
    // understand, and this one understands none. An empty crit is itself invalid.
    return 'the header has crit, which names JWS extensions this verifier does not understand';
  }

  const length = decoded.signature.length;
  if (length === 64) return undefined;
  if (looksLikeDerSignature(decoded.signature)) {
    return (
      `the signature is ${length} bytes of ASN.1 DER, but ES256 needs the 64-byte r||s form ` +
      '(RFC 7518 §3.4); convert it with derToJose. Apple rejects DER with invalid_client'
    );
  }
  return `the signature is ${length} bytes, but ES256 needs exactly 64 (r||s, RFC 7518 §3.4)`;
}

function claimsProblem(
  claims: Record<string, unknown>,
  parsed: ParsedArgs,
  nowSeconds: number,
): string | undefined {
  const { exp, nbf } = claims;
  if (exp !== undefined && typeof exp !== 'number') return 'exp is not a NumericDate number';
  if (typeof exp === 'number' && exp <= nowSeconds) {
    return `the token expired ${formatRelative(exp - nowSeconds)} (exp ${exp})`;
  }
  if (nbf !== undefined && typeof nbf !== 'number') return 'nbf is not a NumericDate number';
  if (typeof nbf === 'number' && nbf > nowSeconds) {
    return `the token is not valid yet: nbf is ${formatRelative(nbf - nowSeconds)}`;
  }

  for (const claim of ['iss', 'sub'] as const) {
    const expected = stringValue(parsed, claim);
    if (expected !== undefined && claims[claim] !== expected) {
      return `${claim} is ${describeValue(claims[claim])}, but --${claim} expects ${describeValue(expected)}`;
    }
  }
  return audienceProblem(claims.aud, stringValue(parsed, 'aud'));
}

function audienceProblem(aud: unknown, expected: string | undefined): string | undefined {
  if (expected === undefined) return undefined;
  const matches = Array.isArray(aud) ? aud.includes(expected) : aud === expected;
  if (matches) return undefined;
  return `aud is ${describeValue(aud)}, but --aud expects ${describeValue(expected)}`;
}

/** Shows a claim value for a message, shortened so that a pasted token never fits inside it. */
function describeValue(value: unknown): string {
  if (value === undefined) return 'missing';
  const text = JSON.stringify(value);
  const characters = charactersIfLonger(text, 120);
  return characters === undefined ? text : `${characters.slice(0, 117).join('')}...`;
}
