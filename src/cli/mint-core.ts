/**
 * Minting one Apple token kind from the command line: `kms-jwt mint KIND` and its short form
 * `kms-jwt client-secret`. The flags and the per-kind help come from the kind's profile
 * (`appleTokenProfiles[kind].fields`), so a new field in a profile is a new flag here.
 */
import type {
  AppleToken,
  AppleTokenField,
  AppleTokenKind,
  AppleTokenProfile,
} from '../apple/types.js';
import type { Signer, SignerEvent } from '../signer.js';
import {
  booleanValue,
  listValue,
  parseCommandArgs,
  requiredValue,
  stringValue,
  type FlagSpec,
  type ParsedArgs,
} from './args.js';
import { shortenForMessage } from '../message-text.js';
import { cacheKeyFor } from './cache-key.js';
import { CliError, usageError } from './errors.js';
import type { CliIo } from './io.js';
import {
  adapterOptionsFrom,
  closeSigner,
  keyFlags,
  keyIdFromKeyFileName,
  localKeyPath,
  openSigner,
} from './keys.js';
import { decodeCompactJws } from './token-text.js';

type FieldValues = Record<string, string | string[] | number>;

/** The result of one mint, fresh or from the cache file. */
interface MintOutcome {
  token: string;
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  iat: number;
  exp: number | undefined;
  cache?: 'hit' | 'miss';
}

const outputFlags: Record<string, FlagSpec> = {
  json: { type: 'boolean' },
  cache: { type: 'string' },
};

/**
 * Runs `mint KIND` (or `client-secret`) with the arguments after the kind.
 *
 * @example
 * const exitCode = await runMint('client-secret', 'client-secret', process.argv.slice(3), io);
 */
export async function runMint(
  kind: AppleTokenKind,
  command: string,
  args: string[],
  io: CliIo,
): Promise<number> {
  const apple = await import('../apple/index.js');
  const profile = apple.appleTokenProfiles[kind];
  const fields = profile.fields;
  const parsed = parseCommandArgs(command, args, flagsFor(fields), 0);
  if (booleanValue(parsed, 'help')) {
    io.out(kindHelp(command, profile, fields));
    return 0;
  }

  const reference = requiredValue(parsed, command, 'key');
  adapterOptionsFrom(parsed, io); // Checks --passphrase-env before anything is minted.
  const values = await readFieldValues(parsed, fields);
  if (kind !== 'business-manager') applyKeyIdFromFileName(values, reference, fields, io);
  assertRequiredFields(command, fields, values);

  let signer: Signer | undefined;
  const mint = async (): Promise<AppleToken> => {
    signer ??= await openSigner(reference, parsed, io);
    // Rules known only from reports do not stop the mint; each one is shown on stderr.
    const onEvent = (event: SignerEvent) => {
      if (event.type === 'warning') io.warn(String(event.message));
    };
    return apple.createAppleToken(kind, { ...values, signer, now: io.now, onEvent } as never);
  };

  try {
    const cachePath = stringValue(parsed, 'cache');
    if (cachePath === '') throw usageError(command, '--cache needs a file path');
    const outcome =
      cachePath === undefined
        ? fromToken(await mint())
        : await mintWithCache({ path: cachePath, kind, profile, values, reference, mint }, io);
    io.out(booleanValue(parsed, 'json') ? formatJson(kind, outcome) : `${outcome.token}\n`);
    return 0;
  } finally {
    await closeSigner(signer);
  }
}

function flagsFor(fields: readonly AppleTokenField[]): Record<string, FlagSpec> {
  const flags: Record<string, FlagSpec> = { ...keyFlags, ...outputFlags };
  for (const field of fields) {
    flags[field.flag.replace(/^--/, '')] = {
      type: 'string',
      multiple: field.type === 'string-list',
    };
  }
  return flags;
}

async function readFieldValues(
  parsed: ParsedArgs,
  fields: readonly AppleTokenField[],
): Promise<FieldValues> {
  const values: FieldValues = {};
  for (const field of fields) {
    const name = field.flag.replace(/^--/, '');
    if (field.type === 'string-list') {
      const list = listValue(parsed, name);
      if (list.length > 0) values[field.option] = list;
      continue;
    }

    const text = stringValue(parsed, name);
    if (text === undefined) continue;
    values[field.option] = field.type === 'duration' ? await durationSeconds(text) : text;
  }
  return values;
}

async function durationSeconds(text: string): Promise<number> {
  const { parseDuration } = await import('../apple/index.js');
  return parseDuration(text);
}

/**
 * Uses the key ID in an `AuthKey_<KEYID>.p8` file name when `--key-id` is absent, and warns when
 * a given `--key-id` disagrees with it, because Apple rejects a `kid` that names another key.
 * Business Manager keys are not named that way: their key ID is a UUID Apple returns on upload.
 */
function applyKeyIdFromFileName(
  values: FieldValues,
  reference: string,
  fields: readonly AppleTokenField[],
  io: CliIo,
): void {
  const path = localKeyPath(reference);
  const fromName = path === undefined ? undefined : keyIdFromKeyFileName(path);
  if (fromName === undefined || !fields.some((field) => field.option === 'keyId')) return;

  const given = values.keyId;
  if (given === undefined) {
    values.keyId = fromName;
    return;
  }
  if (given !== fromName) {
    const shown = shortenForMessage(String(given));
    io.warn(
      `--key-id ${shown} differs from the key ID ${fromName} in the key file name; ` +
        `using ${shown}. Apple rejects a kid that is not the key's own ID.`,
    );
  }
}

function assertRequiredFields(
  command: string,
  fields: readonly AppleTokenField[],
  values: FieldValues,
): void {
  const missing = fields.filter((field) => field.required && values[field.option] === undefined);
  if (missing.length === 0) return;

  const flags = missing.map((field) => field.flag).join(', ');
  const keyIdMissing = missing.some((field) => field.option === 'keyId');
  const keyIdNote = keyIdMissing ? `. --key-id can be left out only ${keyIdFromFileNameRule}` : '';
  throw usageError(
    command,
    `Missing required option${missing.length > 1 ? 's' : ''} ${flags}${keyIdNote}`,
  );
}

/** When `--key-id` may be left out, because {@link applyKeyIdFromFileName} fills it in. */
const keyIdFromFileNameRule = 'when --key is a file named AuthKey_<KEYID>.p8';

/** The inputs of {@link mintWithCache}: the cache file, the token's kind and fields, the key. */
interface CachedMint {
  path: string;
  kind: AppleTokenKind;
  profile: AppleTokenProfile;
  values: FieldValues;
  /** The `--key` reference, which the cache key holds only as a hash. */
  reference: string;
  mint: () => Promise<AppleToken>;
}

async function mintWithCache(request: CachedMint, io: CliIo): Promise<MintOutcome> {
  const { path, kind, profile, values, reference, mint } = request;
  const { getOrMintWithFileCache } = await import('../stores/file-cache.js');
  const cached = await getOrMintWithFileCache({
    path,
    cacheKey: cacheKeyFor(kind, values, reference),
    policy: profile.refreshPolicy,
    now: io.now,
    mint: async () => {
      const minted = await mint();
      return { token: minted.token, iat: minted.claims.iat as number, exp: expOf(minted) };
    },
    onEvent: (event) => reportCacheFailure(event, io),
  });

  const decoded = decodeCompactJws(cached.token);
  if (typeof decoded === 'string') {
    throw new CliError(
      'ERR_CLI_CACHE_INVALID',
      `The cache file ${shortenForMessage(path)} contains a malformed token (${decoded}). ` +
        'Delete the file to mint anew.',
      { details: { path } },
    );
  }
  return {
    token: cached.token,
    header: decoded.header,
    claims: decoded.claims,
    iat: cached.iat,
    exp: cached.exp,
    cache: cached.reused ? 'hit' : 'miss',
  };
}

/** Prints the cache's `failure` events: a failed mint (due token kept) or a failed write. */
function reportCacheFailure(event: SignerEvent, io: CliIo): void {
  if (event.type !== 'failure') return;

  const reason = String(event.message ?? event.code ?? 'unknown error');
  if (event.operation === 'write') {
    io.warn(`the new token was printed but not cached, so the next run mints again. ${reason}`);
    return;
  }
  io.warn(`minting a new token failed, so the cached one was kept: ${reason}`);
}

function expOf(token: AppleToken): number | undefined {
  const exp = token.claims.exp;
  return typeof exp === 'number' ? exp : undefined;
}

function fromToken(token: AppleToken): MintOutcome {
  const iat = token.claims.iat as number;
  return { token: token.token, header: token.header, claims: token.claims, iat, exp: expOf(token) };
}

function formatJson(kind: AppleTokenKind, outcome: MintOutcome): string {
  const output = {
    kind,
    token: outcome.token,
    issuedAt: new Date(outcome.iat * 1000).toISOString(),
    expiresAt: outcome.exp === undefined ? null : new Date(outcome.exp * 1000).toISOString(),
    header: outcome.header,
    claims: outcome.claims,
    ...(outcome.cache === undefined ? {} : { cache: outcome.cache }),
  };
  return `${JSON.stringify(output, null, 2)}\n`;
}

/** Builds `kms-jwt mint KIND --help` from the profile's fields. */
function kindHelp(
  command: string,
  profile: AppleTokenProfile,
  fields: readonly AppleTokenField[],
): string {
  const rows: Array<[string, string]> = [
    ['--key REF', 'The signing key: a .p8 path, file:PATH, env:NAME, awskms:, gcpkms: or pkcs11:'],
  ];
  for (const field of fields) {
    const placeholder = field.type === 'duration' ? 'DURATION' : 'VALUE';
    const repeat = field.type === 'string-list' ? ' (repeatable)' : '';
    rows.push([
      `${field.flag} ${placeholder}`,
      `${field.description}${requiredNote(field)}${repeat}`,
    ]);
  }
  rows.push(
    ['--json', 'Print JSON with the token, issuedAt, expiresAt (ISO 8601), header and claims'],
    ['--cache FILE', 'Reuse a still-valid token from FILE, and write new ones to it (mode 0600)'],
    ['--passphrase-env NAME', 'Read the passphrase of an encrypted key file from variable NAME'],
    ['-h, --help', 'Show this help'],
  );

  const width = Math.max(...rows.map(([flag]) => flag.length)) + 2;
  const lines = rows.flatMap(([flag, text]) => wrapHelpRow(`  ${flag.padEnd(width)}`, text));
  return [
    `Usage: kms-jwt ${command} --key REF [options]`,
    '',
    profile.summary,
    `Header: ${profile.headerFields.join(', ')}. Claims: ${profile.claimFields.join(', ')}.`,
    ...lifetimeLines(profile),
    '',
    'Options:',
    ...lines,
    '',
    'The token alone is printed on stdout. Durations are whole seconds or units: 180d, 12h, 20m, 30s.',
    '',
  ].join('\n');
}

/** Wraps a help row's text at 100 columns, with later lines indented under the text. */
function wrapHelpRow(label: string, text: string): string[] {
  const indent = ' '.repeat(label.length);
  const lines: string[] = [];
  let line = label;
  let lineHasWord = false;
  for (const word of text.split(' ')) {
    if (lineHasWord && line.length + 1 + word.length > helpColumns) {
      lines.push(line);
      line = indent;
      lineHasWord = false;
    }
    line += lineHasWord ? ` ${word}` : word;
    lineHasWord = true;
  }
  lines.push(line);
  return lines;
}

const helpColumns = 100;

function requiredNote(field: AppleTokenField): string {
  if (!field.required) return '';
  return field.option === 'keyId' ? ` (required, except ${keyIdFromFileNameRule})` : ' (required)';
}

/**
 * Describes a kind's lifetime cap for its help, in the words of the rule Apple states, and the
 * lower limit this package enforces where lifetimes near the cap are rejected, not only warned.
 */
function lifetimeLines(profile: AppleTokenProfile): string[] {
  const lifetime = profile.lifetime;
  if (lifetime === undefined) {
    return [`Lifetime: no exp; Apple rejects an iat more than ${profile.maxIatAgeSeconds} s old.`];
  }
  if (lifetime.maxSeconds === undefined) return ['Lifetime: Apple documents no cap.'];
  const from = lifetime.countsFrom === 'iat' ? 'exp - iat' : "exp - now on Apple's clock";
  const bound = lifetime.maxInclusive ? 'at most' : 'less than';
  const cap = `Lifetime: ${from} ${bound} ${lifetime.maxSeconds} s.`;
  if (lifetime.marginSeverity !== 'error') return [cap];

  const limit = lifetime.maxSeconds - lifetime.marginSeconds;
  return [
    cap,
    `Lifetimes over ${limit} s are rejected, to stay ${lifetime.marginSeconds} s under it.`,
  ];
}
