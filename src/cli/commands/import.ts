/**
 * `kms-jwt import --from AuthKey_X.p8 --to REF`: reads a `.p8` with `loadPrivateKey` and hands
 * it to the target adapter's `importKey`, which wraps and uploads it and proves the import. The
 * CLI then checks that the imported public key has the `.p8`'s thumbprint, prints the reference
 * to use on stdout, and the thumbprint and backend details on stderr.
 */
import { createPublicKey } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import { jwkThumbprint } from '../../jwk.js';
import { loadAdapter, parseKeyReference, type AdapterOptions } from '../../key-uri.js';
import {
  booleanValue,
  parseCommandArgs,
  requiredValue,
  stringValue,
  type FlagSpec,
  type ParsedArgs,
} from '../args.js';
import { CliError, exitCodes, usageError } from '../errors.js';
import type { CliIo } from '../io.js';
import { adapterOptionsFrom } from '../keys.js';

const flags: Record<string, FlagSpec> = {
  from: { type: 'string' },
  to: { type: 'string' },
  alias: { type: 'string' },
  'wrapping-algorithm': { type: 'string' },
  overwrite: { type: 'boolean' },
  'passphrase-env': { type: 'string' },
};

const help = `Usage: kms-jwt import --from AuthKey_XXXXXXXXXX.p8 --to REF [--alias NAME] [--overwrite]

Imports an existing P-256 key into AWS KMS, Google Cloud KMS or a PKCS#11 token, so that it can
sign without the .p8 file. The backend adapter wraps the key, uploads it and proves the import
by comparing public keys and checking a test signature.

Options:
  --from FILE             The .p8 (PKCS#8) or SEC1 PEM key file to import
  --to REF                Where to import it: an awskms:, gcpkms: or pkcs11: reference
  --alias NAME            AWS KMS only: an alias for the new key
  --wrapping-algorithm A  AWS KMS only: RSA_AES_KEY_WRAP_SHA_256 (the default, under RSA_4096)
                          or RSAES_OAEP_SHA_256
  --overwrite             PKCS#11 only: replace objects with the same label or ID
  --passphrase-env NAME   Variable holding the passphrase of an encrypted .p8
  -h, --help              Show this help

A flag that the target's backend does not use is a usage error, raised before anything is read.
Prints the key reference to use on stdout; the thumbprint and backend details go to stderr.
SIGINT, SIGTERM and SIGHUP wait until the import has finished or rolled back. A finished import
then exits with 128 plus the signal number, and a failed one with its error's exit code. A second
signal stops it at once. Keep the .p8 offline afterwards, or delete it, once tokens signed
through REF verify.
`;

/**
 * Runs `import` with the arguments after the command name.
 *
 * @example
 * await run(['--from', 'AuthKey_ABC123DEFG.p8', '--to', 'awskms:alias/apple-siwa'], io);
 */
export async function run(args: string[], io: CliIo): Promise<number> {
  const parsed = parseCommandArgs('import', args, flags, 0);
  if (booleanValue(parsed, 'help')) {
    io.out(help);
    return exitCodes.ok;
  }

  const from = requiredValue(parsed, 'import', 'from');
  const target = parseKeyReference(requiredValue(parsed, 'import', 'to'));
  if (target.scheme === 'file' || target.scheme === 'env') throw localTargetError(target.scheme);
  const options = importOptions(parsed, io, target.scheme);

  const pem = await import('../../../adapters/pem/index.js');
  const exposure = pem.describeKeyFilePermissions(from);
  if (exposure !== undefined) io.warn(exposure);
  const privateKey = await pem.loadPrivateKey({ path: from }, options);
  const expectedThumbprint = jwkThumbprint(createPublicKey(privateKey));

  const adapter = await loadAdapter(target);
  const importKey = adapter.importKey?.bind(adapter);
  if (importKey === undefined) throw noImportError(adapter.name, target.scheme);
  const overwrite = booleanValue(parsed, 'overwrite');
  const { value: result, signal } = await deferSignals(
    () => importKey({ privateKey, target, overwrite, options }),
    io,
  );

  assertSameKey(expectedThumbprint, jwkThumbprint(result.publicKey), result.reference);
  io.out(`${result.reference}\n`);
  io.note(`kms-jwt: thumbprint: ${expectedThumbprint}`);
  for (const [name, value] of Object.entries(result.details)) io.note(`kms-jwt: ${name}: ${value}`);
  if (signal === undefined) return exitCodes.ok;

  io.warn(`${signal} arrived during the import, which was finished first; the result is above`);
  return 128 + osConstants.signals[signal];
}

const deferredSignals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * Runs `work` with SIGINT, SIGTERM and SIGHUP held back, and returns the first one that arrived.
 * An import writes two objects and then proves them, and a process that stopped in between
 * would leave a private key without its public key, or objects that were never proven. A second
 * signal ends the process at once, for an import that hangs on its backend.
 */
async function deferSignals<T>(
  work: () => Promise<T>,
  io: CliIo,
): Promise<{ value: T; signal: (typeof deferredSignals)[number] | undefined }> {
  let received: (typeof deferredSignals)[number] | undefined;
  const removeAll = () => {
    for (const remove of handlers) remove();
  };
  const handlers = deferredSignals.map((name) => {
    const handler = () => {
      if (received === undefined) {
        received = name;
        io.warn(`${name} received: finishing the import first. Send it again to stop at once.`);
        return;
      }
      // Without listeners the signal's default action applies again, so this ends the process.
      removeAll();
      process.kill(process.pid, name);
    };
    process.on(name, handler);
    return () => process.off(name, handler);
  });

  try {
    const value = await work();
    // A signal that arrived while the import ran is delivered in an event loop phase of its
    // own, which can come after the import's last step: let it run before reading `received`.
    await new Promise((resolve) => setImmediate(resolve));
    return { value, signal: received };
  } finally {
    removeAll();
  }
}

function importOptions(parsed: ParsedArgs, io: CliIo, scheme: string): AdapterOptions {
  assertFlagsApply(parsed, scheme);
  const options = adapterOptionsFrom(parsed, io);
  const alias = stringValue(parsed, 'alias');
  if (alias !== undefined) options.alias = alias;
  const wrappingAlgorithm = stringValue(parsed, 'wrapping-algorithm');
  if (wrappingAlgorithm !== undefined) {
    if (!awsWrappingAlgorithms.includes(wrappingAlgorithm)) {
      throw usageError(
        'import',
        `--wrapping-algorithm must be ${awsWrappingAlgorithms.join(' or ')}`,
      );
    }
    options.wrappingAlgorithm = wrappingAlgorithm;
  }
  return options;
}

const awsWrappingAlgorithms = ['RSA_AES_KEY_WRAP_SHA_256', 'RSAES_OAEP_SHA_256'];

const awsOnly = 'it chooses how AWS KMS wraps the key, and is for awskms: targets only';

/**
 * The import flags that each backend does not use, with the reason. Ignoring such a flag would
 * create the key under another name than the one requested, or keep a key the caller meant to
 * replace, so the command rejects it before it reads the .p8 or contacts the backend.
 */
const unusedFlagsOfCloudKms: Record<string, string> = {
  alias: 'Cloud KMS has no key aliases, and the CryptoKey ID in --to names the key',
  overwrite: 'Cloud KMS adds a new key version on every import and never replaces one',
  'wrapping-algorithm': awsOnly,
};

const unusedFlagsByScheme: Record<string, Record<string, string>> = {
  awskms: {
    overwrite:
      'AWS KMS never replaces imported key material. Import into a new alias, or into a key ' +
      'that is still in PendingImport',
  },
  // Both schemes load the Cloud KMS adapter.
  gcpkms: unusedFlagsOfCloudKms,
  cloudkms: unusedFlagsOfCloudKms,
  pkcs11: {
    alias: 'the object label comes from object= in --to',
    'wrapping-algorithm': awsOnly,
  },
};

/** Throws a usage error that names each given flag that the target's backend does not use. */
function assertFlagsApply(parsed: ParsedArgs, scheme: string): void {
  if (!Object.hasOwn(unusedFlagsByScheme, scheme)) return;
  const unused = Object.entries(unusedFlagsByScheme[scheme]!).filter(
    ([flag]) => parsed.values[flag] !== undefined && parsed.values[flag] !== false,
  );
  if (unused.length === 0) return;

  const reasons = unused.map(
    ([flag, reason]) => `--${flag} does not apply to ${scheme}: targets, because ${reason}.`,
  );
  const names = unused.map(([flag]) => `--${flag}`).join(' and ');
  throw usageError('import', `${reasons.join(' ')} Remove ${names}`);
}

function assertSameKey(expected: string, imported: string, reference: string): void {
  if (expected === imported) return;
  throw new CliError(
    'ERR_CLI_IMPORT_MISMATCH',
    `The key at ${reference} has thumbprint ${imported}, but the .p8 has ${expected}. ` +
      'Do not use the reference; delete the imported key and import again.',
    { details: { reference, expected, imported } },
  );
}

function localTargetError(scheme: string): CliError {
  return new CliError(
    'ERR_CLI_IMPORT_TARGET',
    `import --to ${scheme}: is a local key, so there is nothing to import into. Use the .p8 ` +
      'directly with --key, or import into an awskms:, gcpkms: or pkcs11: reference.',
    { details: { scheme } },
  );
}

function noImportError(adapterName: string, scheme: string): CliError {
  return new CliError(
    'ERR_CLI_IMPORT_TARGET',
    `The ${adapterName} adapter behind ${scheme}: cannot import keys. ` +
      'Import into an awskms:, gcpkms: or pkcs11: reference instead.',
    { details: { scheme, adapter: adapterName } },
  );
}
