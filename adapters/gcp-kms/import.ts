/**
 * Imports an existing P-256 private key, such as an Apple `.p8`, into Cloud KMS as a new
 * CryptoKeyVersion, following the Cloud KMS "Importing a key version" flow:
 *
 * 1. create an import-only ASYMMETRIC_SIGN CryptoKey, or reuse an existing one;
 * 2. create an ImportJob and wait until it is ACTIVE;
 * 3. wrap the PKCS#8 DER locally under the job's public key;
 * 4. call ImportCryptoKeyVersion and wait until the version leaves PENDING_IMPORT;
 * 5. prove the result: the version's public key equals the `.p8`'s, and a test signature verifies.
 *
 * A failure raises `ERR_GCP_KMS_IMPORT_FAILED`, naming the step and the state of the key.
 */
import { createPublicKey, randomBytes, verify, type KeyObject } from 'node:crypto';
import { KmsJwtError, isKmsJwtError } from '../../src/errors.js';
import type { ImportResult, KeyReference } from '../../src/key-uri.js';
import { emitEvent, sha256, type RuntimeOptions } from '../../src/signer.js';
import { initializeClient, maxTimerMs, runKmsCall, type CallSettings } from './call.js';
import {
  assertImportClient,
  createKmsClient,
  type CryptoKeyResource,
  type GcpKmsImportClient,
  type ImportJobResource,
  type ImportMethodName,
  type ImportProtectionLevel,
} from './client.js';
import { escapeServerText, grpcStatus, quoteServerText } from './errors.js';
import {
  formatGcpKmsReference,
  isVersionNameOf,
  parseGcpKmsReference,
  type GcpKmsReference,
} from './reference.js';
import { callSettingsFrom, es256Algorithm, fetchPublicKey, signDigest } from './signer.js';
import { assertImportMethod, defaultImportMethod, wrapPkcs8ForImport } from './wrap.js';

/** Options of {@link importP8ToGcpKms}. Reference attributes fill in what is not given here. */
export interface GcpKmsImportOptions extends RuntimeOptions {
  /** A `KeyManagementServiceClient` to use instead of one built from the reference. */
  client?: GcpKmsImportClient;
  /** Protection level of a new CryptoKey and its ImportJob. Default HSM. */
  protectionLevel?: 'HSM' | 'SOFTWARE';
  /** ImportJob method. Default RSA_OAEP_3072_SHA256_AES_256. */
  importMethod?: string;
  /** Reuse this ImportJob ID in the key ring instead of creating a new job. */
  importJobId?: string;
  /** Attempts per idempotent call. Default 3. Create and import calls are never repeated. */
  maxAttempts?: number;
  /** Delay between state polls, in milliseconds. Default 1000. */
  pollIntervalMs?: number;
  /** Maximum wait for the ImportJob, and then for the version, in ms. Default 300000. */
  pollTimeoutMs?: number;
}

/** The steps named in import errors and events. */
export type ImportStep =
  | 'create-key'
  | 'create-import-job'
  | 'wait-import-job'
  | 'wrap'
  | 'import-version'
  | 'wait-version'
  | 'prove';

interface ImportContext {
  client: GcpKmsImportClient;
  settings: CallSettings;
  target: GcpKmsReference;
  importMethod: ImportMethodName;
  /** The CryptoKey's protection level, known after the create-key step. */
  protectionLevel: ImportProtectionLevel;
  pollIntervalMs: number;
  pollTimeoutMs: number;
  /** Facts gathered so far, for the result and for error messages. */
  facts: Record<string, string>;
}

/**
 * Imports `privateKey` into the CryptoKey that `target` names and returns the reference of the
 * new, proven version.
 *
 * @example
 * const { reference } = await importP8ToGcpKms(
 *   await loadPrivateKey({ path: 'AuthKey_ABC123DEFG.p8' }),
 *   'gcpkms:projects/acme/locations/global/keyRings/apple/cryptoKeys/siwa?protection-level=HSM',
 * );
 */
export async function importP8ToGcpKms(
  privateKey: KeyObject,
  target: string | KeyReference,
  options: GcpKmsImportOptions = {},
): Promise<ImportResult> {
  assertP256PrivateKey(privateKey);
  const parsed = parseImportTarget(target);
  const owned = options.client === undefined;
  if (!owned) assertImportClient(options.client);
  const client = options.client ?? (await createKmsClient(parsed.endpoint));

  try {
    const context = createContext(client, parsed, options);
    await initializeClient(context.settings, client);
    return await runImport(context, privateKey);
  } finally {
    if (owned) await client.close?.().catch(() => undefined);
  }
}

async function runImport(context: ImportContext, privateKey: KeyObject): Promise<ImportResult> {
  const protectionLevel = await step(context, 'create-key', () => ensureCryptoKey(context));
  context.protectionLevel = protectionLevel;
  context.facts.protectionLevel = protectionLevel;

  const jobName = await step(context, 'create-import-job', () => ensureImportJob(context));
  context.facts.importJob = jobName;
  const jobPem = await step(context, 'wait-import-job', () => waitForImportJob(context, jobName));

  const wrappedKey = await step(context, 'wrap', async () =>
    wrapPkcs8ForImport(privateKey, jobPem, context.importMethod),
  );
  const versionName = await step(context, 'import-version', () =>
    importVersion(context, jobName, wrappedKey),
  );
  context.facts.cryptoKeyVersion = versionName;
  await step(context, 'wait-version', () => waitForVersion(context, versionName));

  const publicKey = await step(context, 'prove', () =>
    proveImport(context, versionName, privateKey),
  );
  return {
    reference: formatGcpKmsReference(versionName, context.target.endpoint),
    publicKey,
    details: { ...context.facts },
  };
}

/** Runs one step, reporting it through onEvent and naming it in any error. */
async function step<T>(
  context: ImportContext,
  name: ImportStep,
  run: () => Promise<T>,
): Promise<T> {
  emitEvent(context.settings.events, { type: 'import-step', backend: 'gcp-kms', step: name });
  try {
    return await run();
  } catch (error) {
    throw importFailed(context, name, error);
  }
}

function createContext(
  client: GcpKmsImportClient,
  target: GcpKmsReference,
  options: GcpKmsImportOptions,
): ImportContext {
  const importMethod =
    options.importMethod ?? target.importSettings.importMethod ?? defaultImportMethod;
  assertImportMethod(importMethod);
  const pollIntervalMs = options.pollIntervalMs ?? 1_000;
  const pollTimeoutMs = options.pollTimeoutMs ?? 300_000;
  // Both bound the polling, so neither may be infinite, and the interval is a timer delay.
  if (!isDuration(pollIntervalMs) || !isDuration(pollTimeoutMs)) {
    throw new TypeError(
      `pollIntervalMs and pollTimeoutMs must be positive numbers of milliseconds up to ` +
        `${maxTimerMs}, not ${pollIntervalMs} and ${pollTimeoutMs}.`,
    );
  }

  const protectionLevel = options.protectionLevel ?? target.importSettings.protectionLevel;
  const importJobId = options.importJobId ?? target.importSettings.importJobId;
  return {
    client,
    settings: callSettingsFrom(options),
    target: { ...target, importSettings: { protectionLevel, importMethod, importJobId } },
    importMethod,
    protectionLevel: protectionLevel ?? 'HSM',
    pollIntervalMs,
    pollTimeoutMs,
    facts: { cryptoKey: target.cryptoKeyName, importMethod },
  };
}

/**
 * Checks an existing CryptoKey, or creates the import-only one, and returns its protection
 * level. GetCryptoKey comes first, because Cloud KMS checks a call's IAM permission before it
 * looks at the resource (it answers PERMISSION_DENIED even for a missing one), so CreateCryptoKey
 * fails for a caller with cloudkms.cryptoKeys.get but not cloudkms.cryptoKeys.create.
 */
async function ensureCryptoKey(context: ImportContext): Promise<ImportProtectionLevel> {
  const existing = await findCryptoKey(context);
  if (existing === undefined && (await createCryptoKey(context))) {
    context.facts.createdCryptoKey = 'yes';
    return context.target.importSettings.protectionLevel ?? 'HSM';
  }

  // Without a key from the first GetCryptoKey, the create call found one: it was created in
  // between, or the caller may not read it, which the second GetCryptoKey then reports.
  context.facts.createdCryptoKey = 'no';
  const key = existing ?? (await getCryptoKey(context));
  return assertExistingKeyFits(key, context.target);
}

/** Returns the CryptoKey, or undefined when Cloud KMS answers NOT_FOUND or PERMISSION_DENIED. */
async function findCryptoKey(context: ImportContext): Promise<CryptoKeyResource | undefined> {
  try {
    return await getCryptoKey(context);
  } catch (error) {
    const code = isKmsJwtError(error) ? error.details.grpcCode : undefined;
    if (code === grpcStatus.notFound || code === grpcStatus.permissionDenied) return undefined;
    throw error;
  }
}

function getCryptoKey(context: ImportContext): Promise<CryptoKeyResource> {
  const { client, settings, target } = context;
  return runKmsCall(settings, {
    operation: 'GetCryptoKey',
    resource: target.cryptoKeyName,
    idempotent: true,
    invoke: (callOptions) => client.getCryptoKey({ name: target.cryptoKeyName }, callOptions),
  });
}

/** Creates the import-only CryptoKey, and returns false when it already exists. */
async function createCryptoKey(context: ImportContext): Promise<boolean> {
  const { client, settings, target } = context;
  const level = target.importSettings.protectionLevel ?? 'HSM';
  try {
    await runKmsCall(settings, {
      operation: 'CreateCryptoKey',
      resource: target.cryptoKeyName,
      idempotent: false,
      invoke: (callOptions) =>
        client.createCryptoKey(
          {
            parent: target.keyRingName,
            cryptoKeyId: target.cryptoKeyId,
            skipInitialVersionCreation: true,
            cryptoKey: {
              purpose: 'ASYMMETRIC_SIGN',
              importOnly: true,
              versionTemplate: { algorithm: es256Algorithm, protectionLevel: level },
            },
          },
          callOptions,
        ),
    });
    return true;
  } catch (error) {
    if (isKmsJwtError(error) && error.details.grpcCode === grpcStatus.alreadyExists) return false;
    throw error;
  }
}

function assertExistingKeyFits(
  key: CryptoKeyResource,
  target: GcpKmsReference,
): ImportProtectionLevel {
  const algorithm = key.versionTemplate?.algorithm;
  const level = String(key.versionTemplate?.protectionLevel ?? '');
  const wanted = target.importSettings.protectionLevel;
  const problems = [
    key.purpose === 'ASYMMETRIC_SIGN'
      ? ''
      : `its purpose is ${String(key.purpose)}, not ASYMMETRIC_SIGN`,
    algorithm === es256Algorithm
      ? ''
      : `its version template algorithm is ${String(algorithm)}, not ${es256Algorithm}`,
    wanted === undefined || wanted === level
      ? ''
      : `its protection level is ${level}, not ${wanted}`,
    isImportProtectionLevel(level)
      ? ''
      : `its protection level is ${level}, but imports go to HSM or SOFTWARE keys`,
  ].filter((problem) => problem !== '');
  if (problems.length === 0 && isImportProtectionLevel(level)) return level;
  throw new KmsJwtError(
    'ERR_GCP_KMS_IMPORT_FAILED',
    `The existing CryptoKey ${target.cryptoKeyName} cannot take an ES256 import: ` +
      `${problems.join('; ')}. Name a new CryptoKey ID to have one created.`,
    { details: { resource: target.cryptoKeyName } },
  );
}

function isDuration(ms: number): boolean {
  return Number.isFinite(ms) && ms > 0 && ms <= maxTimerMs;
}

function isImportProtectionLevel(level: string): level is ImportProtectionLevel {
  return level === 'HSM' || level === 'SOFTWARE';
}

/** Creates an ImportJob, or looks up the one named in the options; returns its name. */
async function ensureImportJob(context: ImportContext): Promise<string> {
  const { client, settings, target, importMethod } = context;
  const given = target.importSettings.importJobId;
  if (given !== undefined) return `${target.keyRingName}/importJobs/${given}`;

  const stamp = new Date()
    .toISOString()
    .replace(/[-:T.Z]/g, '')
    .slice(0, 14);
  const importJobId = `kms-jwt-${stamp}-${randomBytes(3).toString('hex')}`;
  const jobName = `${target.keyRingName}/importJobs/${importJobId}`;
  const job = await runKmsCall(settings, {
    operation: 'CreateImportJob',
    resource: jobName,
    idempotent: false,
    invoke: (callOptions) =>
      client.createImportJob(
        {
          parent: target.keyRingName,
          importJobId,
          importJob: { importMethod, protectionLevel: context.protectionLevel },
        },
        callOptions,
      ),
  });
  // The job is polled and named in messages by this name, so a reply must not replace it.
  if (job.name === undefined || job.name === null || job.name === jobName) return jobName;
  throw new KmsJwtError(
    'ERR_GCP_KMS_IMPORT_FAILED',
    `CreateImportJob returned the ImportJob name ${quoteServerText(job.name)}, not the ` +
      `requested ${jobName}, so it is not used.`,
  );
}

/** Polls the ImportJob until it is ACTIVE and returns its wrapping public key in PEM. */
async function waitForImportJob(context: ImportContext, jobName: string): Promise<string> {
  const job = await poll(context, 'job', async () => {
    const reply: ImportJobResource = await runKmsCall(context.settings, {
      operation: 'GetImportJob',
      resource: jobName,
      idempotent: true,
      invoke: (callOptions) => context.client.getImportJob({ name: jobName }, callOptions),
    });
    context.facts.importJobState = String(reply.state);
    return reply.state === 'PENDING_GENERATION' ? undefined : reply;
  });

  const problems = [
    job.state === 'ACTIVE' ? '' : `it is ${String(job.state)}, not ACTIVE`,
    job.importMethod === context.importMethod ? '' : `its method is ${String(job.importMethod)}`,
    job.protectionLevel === context.facts.protectionLevel
      ? ''
      : `its protection level is ${String(job.protectionLevel)}, but the key's is ${context.facts.protectionLevel}`,
  ].filter((problem) => problem !== '');
  if (problems.length > 0) {
    throw new KmsJwtError(
      'ERR_GCP_KMS_IMPORT_FAILED',
      `The ImportJob ${jobName} cannot be used: ${problems.join('; ')}.`,
    );
  }
  const pem = job.publicKey?.pem;
  if (typeof pem !== 'string' || pem === '') {
    throw new KmsJwtError(
      'ERR_GCP_KMS_IMPORT_FAILED',
      `The ACTIVE ImportJob ${jobName} has no public key.`,
    );
  }
  return pem;
}

/** Sends the wrapped key. The call is never repeated, because a repeat adds a second version. */
async function importVersion(
  context: ImportContext,
  jobName: string,
  wrappedKey: Buffer,
): Promise<string> {
  const { target } = context;
  const version = await runKmsCall(context.settings, {
    operation: 'ImportCryptoKeyVersion',
    resource: target.cryptoKeyName,
    idempotent: false,
    invoke: (callOptions) =>
      context.client.importCryptoKeyVersion(
        { parent: target.cryptoKeyName, algorithm: es256Algorithm, importJob: jobName, wrappedKey },
        callOptions,
      ),
  });
  // The name is printed, put into the returned reference and polled, so it must be exactly a
  // version of this key. Anything more could carry a query such as ?endpoint= or a forged line.
  const name = version.name;
  if (isVersionNameOf(name, target.cryptoKeyName)) return name;
  throw new KmsJwtError(
    'ERR_GCP_KMS_IMPORT_FAILED',
    `ImportCryptoKeyVersion returned the version name ${quoteServerText(name)}, which is not ` +
      `${target.cryptoKeyName}/cryptoKeyVersions/N, so it is not used.`,
    // The call succeeded, so Cloud KMS most likely created a version under its real name.
    { details: { versionMayExist: true } },
  );
}

/** Polls the new version until it leaves PENDING_IMPORT; anything but ENABLED fails. */
async function waitForVersion(context: ImportContext, versionName: string): Promise<void> {
  const version = await poll(context, 'version', async () => {
    const reply = await runKmsCall(context.settings, {
      operation: 'GetCryptoKeyVersion',
      resource: versionName,
      idempotent: true,
      invoke: (callOptions) =>
        context.client.getCryptoKeyVersion({ name: versionName }, callOptions),
    });
    context.facts.versionState = String(reply.state);
    const reason = reply.importFailureReason;
    if (reason) context.facts.importFailureReason = escapeServerText(String(reason));
    return reply.state === 'PENDING_IMPORT' ? undefined : reply;
  });
  if (version.state === 'ENABLED') return;
  throw new KmsJwtError(
    'ERR_GCP_KMS_IMPORT_FAILED',
    `The new version ${versionName} is ${String(version.state)}, not ENABLED.`,
  );
}

/** Checks that the version contains the `.p8`'s key: equal public keys, a verifying signature. */
async function proveImport(
  context: ImportContext,
  versionName: string,
  privateKey: KeyObject,
): Promise<KeyObject> {
  const publicKey = await fetchPublicKey(context.settings, context.client, versionName);
  const expected = createPublicKey(privateKey);
  const spki = (key: KeyObject) => key.export({ type: 'spki', format: 'der' });
  if (!spki(publicKey).equals(spki(expected))) {
    throw new KmsJwtError(
      'ERR_GCP_KMS_IMPORT_FAILED',
      `The public key of ${versionName} differs from the imported key's; the version holds other key material.`,
    );
  }

  const testInput = Buffer.from(`kms-jwt-signer import check ${versionName}`);
  const digest = sha256(testInput);
  const signature = await signDigest(context.settings, context.client, versionName, digest);
  if (!verify('sha256', testInput, { key: expected, dsaEncoding: 'ieee-p1363' }, signature)) {
    throw new KmsJwtError(
      'ERR_GCP_KMS_IMPORT_FAILED',
      `A test signature by ${versionName} does not verify under the imported key.`,
    );
  }
  return publicKey;
}

/** Calls `read` every poll interval until it returns a value or the poll timeout passes. */
async function poll<T>(
  context: ImportContext,
  what: string,
  read: () => Promise<T | undefined>,
): Promise<T> {
  const started = performance.now();
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (performance.now() - started > context.pollTimeoutMs) {
      throw new KmsJwtError(
        'ERR_GCP_KMS_IMPORT_FAILED',
        `The ${what} was still pending after ${context.pollTimeoutMs} ms; raise pollTimeoutMs or retry later.`,
      );
    }
    await delay(context.pollIntervalMs, context.settings.signal);
  }
}

function delay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortedImport(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortedImport(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function abortedImport(signal: AbortSignal): KmsJwtError {
  return new KmsJwtError(
    'ERR_GCP_KMS_ABORTED',
    "The Cloud KMS import was aborted by the caller's signal.",
    {
      cause: signal.reason,
    },
  );
}

function importFailed(context: ImportContext, name: ImportStep, error: unknown): KmsJwtError {
  const cause = isKmsJwtError(error) ? error : undefined;
  const state = describeImportState(context.facts);
  const versionMayExist = mayHaveCreatedVersion(name, error);
  const hint = versionMayExist ? ` ${describeVersionSearch(context.target.cryptoKeyName)}` : '';
  const details = {
    ...context.facts,
    step: name,
    causeCode: cause?.code ?? 'none',
    ...(versionMayExist ? { versionMayExist } : {}),
  };
  // An abort is the caller's own doing, so it keeps its code and the signal's reason as cause.
  // It still names the state, because a version may already contain the uploaded key.
  if (cause?.code === 'ERR_GCP_KMS_ABORTED') {
    return new KmsJwtError(
      'ERR_GCP_KMS_ABORTED',
      `The Cloud KMS import was aborted by the caller's signal at step "${name}". ` +
        `State: ${state}.${hint}`,
      { cause: cause.cause, details },
    );
  }

  const message = error instanceof Error ? error.message : String(error);
  return new KmsJwtError(
    'ERR_GCP_KMS_IMPORT_FAILED',
    `Cloud KMS import failed at step "${name}": ${message} State: ${state}.${hint}`,
    { cause: error, details },
  );
}

/**
 * Codes of ImportCryptoKeyVersion failures that leave its outcome unknown. The request may have
 * reached Cloud KMS, which then created a version, before the response was lost or abandoned.
 * Every other coded failure is a status with which the service rejects a request.
 */
const unknownOutcomeCodes = new Set([
  'ERR_GCP_KMS_TIMEOUT',
  'ERR_GCP_KMS_ABORTED',
  'ERR_GCP_KMS_UNAVAILABLE',
  'ERR_GCP_KMS_REQUEST_FAILED',
]);

function mayHaveCreatedVersion(step: ImportStep, error: unknown): boolean {
  if (step !== 'import-version') return false;
  if (!isKmsJwtError(error)) return true;
  return unknownOutcomeCodes.has(error.code) || error.details.versionMayExist === true;
}

/** Describes the version that may exist after an import-version failure, and how to find it. */
function describeVersionSearch(cryptoKeyName: string): string {
  const [, project, , location, , keyRing, , cryptoKey] = cryptoKeyName.split('/');
  const command =
    `gcloud kms keys versions list --project ${project} --location ${location} ` +
    `--keyring ${keyRing} --key ${cryptoKey}`;
  return (
    'ImportCryptoKeyVersion may have created a version with the uploaded key before the call ' +
    `ended. Before importing again, run "${command}" and look for a version in ` +
    'PENDING_IMPORT or IMPORT_FAILED, or an ENABLED one created just now. Or call ' +
    `ListCryptoKeyVersions on ${cryptoKeyName} with filter 'state=PENDING_IMPORT', then ` +
    "'state=IMPORT_FAILED'. Disable or destroy an ENABLED version that should not be used."
  );
}

/** Describes what the import has done so far: the CryptoKey, the ImportJob and the version. */
function describeImportState(facts: Record<string, string>): string {
  const state = [
    facts.createdCryptoKey === 'yes'
      ? `CryptoKey ${facts.cryptoKey} was created`
      : `CryptoKey ${facts.cryptoKey}`,
    facts.importJob ? `ImportJob ${facts.importJob} is ${facts.importJobState ?? 'unknown'}` : '',
    facts.cryptoKeyVersion
      ? `version ${facts.cryptoKeyVersion} is ${facts.versionState ?? 'unknown'}`
      : '',
    facts.importFailureReason ? `importFailureReason: ${facts.importFailureReason}` : '',
  ].filter((part) => part !== '');
  return state.join('; ');
}

function parseImportTarget(target: string | KeyReference): GcpKmsReference {
  const reference: KeyReference =
    typeof target === 'string'
      ? { scheme: 'gcpkms', rest: target.replace(/^(?:gcpkms|cloudkms):/i, ''), raw: target }
      : target;
  const parsed = parseGcpKmsReference(reference);
  if (parsed.versionName === undefined) return parsed;
  throw new KmsJwtError(
    'ERR_KEY_REFERENCE_INVALID',
    `The import target ${reference.raw} names a version, but an import adds a new version whose ` +
      `number Cloud KMS picks. Name the CryptoKey instead: gcpkms:${parsed.cryptoKeyName}.`,
    { details: { adapter: 'gcp-kms' } },
  );
}

function assertP256PrivateKey(privateKey: KeyObject): void {
  if (privateKey?.type !== 'private') {
    throw new TypeError(
      'importP8ToGcpKms expects a private KeyObject, such as loadPrivateKey returns.',
    );
  }
  const curve = privateKey.asymmetricKeyDetails?.namedCurve;
  if (privateKey.asymmetricKeyType === 'ec' && curve === 'prime256v1') return;
  throw new KmsJwtError(
    'ERR_KEY_NOT_P256',
    `The key to import is ${privateKey.asymmetricKeyType} ${curve ?? ''}, but ES256 needs a P-256 key.`,
    { details: { found: `${privateKey.asymmetricKeyType} ${curve ?? ''}`.trim() } },
  );
}
