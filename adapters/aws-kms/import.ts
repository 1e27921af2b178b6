/**
 * Imports an existing P-256 private key, such as an Apple `.p8`, into AWS KMS as non-exportable
 * key material, following the AWS KMS "Importing key material" procedure:
 *
 * 1. CreateKey with Origin EXTERNAL, ECC_NIST_P256 and SIGN_VERIFY, or check that the target
 *    is an existing EXTERNAL ECC_NIST_P256 key in PendingImport;
 * 2. GetParametersForImport: an RSA wrapping public key and an import token;
 * 3. wrap the PKCS#8 DER locally;
 * 4. ImportKeyMaterial with KEY_MATERIAL_DOES_NOT_EXPIRE;
 * 5. CreateAlias, when the target or the `alias` setting names an alias;
 * 6. prove the result: GetPublicKey must equal the `.p8`'s public key, and a test signature
 *    must verify locally;
 * 7. return the key ARN and the public key, whose JWK thumbprint the CLI prints.
 *
 * The unwrapped key exists only in memory buffers, which are zeroed after wrapping, and is never
 * written to a file. A failure names its step and the state the KMS key was left in.
 */
import { createPublicKey, randomBytes, verify, type KeyObject } from 'node:crypto';
import type {
  CreateKeyCommandOutput,
  DescribeKeyCommandOutput,
  GetParametersForImportCommandOutput,
  KeyMetadata,
} from '@aws-sdk/client-kms';
import { BackendError, KeyError, isKmsJwtError } from '../../src/errors.js';
import type { ImportResult } from '../../src/key-uri.js';
import type { KmsConnection } from './client.js';
import { arnScope, type AwsKmsReference } from './reference.js';
import { AwsKmsSigner } from './signer.js';
import { wrapKeyMaterial, type WrappingAlgorithm, type WrappingKeySpec } from './wrap.js';

/** Import settings beyond the target reference. */
export interface ImportSettings {
  /** Defaults to RSA_AES_KEY_WRAP_SHA_256; RSAES_OAEP_SHA_256 is also offered. */
  wrappingAlgorithm?: WrappingAlgorithm;
  /** Defaults to RSA_4096. */
  wrappingKeySpec?: WrappingKeySpec;
  /** The description of a newly created key. */
  description?: string;
  /**
   * An alias (`alias/NAME`) to create for the key after the import. A target that is itself an
   * alias is created anyway, so this setting is for a target given as a key ID or key ARN.
   */
  alias?: string;
  signal?: AbortSignal;
}

/** The result of a proven import, with the facts the CLI prints. */
export interface AwsKmsImportResult extends ImportResult {
  keyArn: string;
  alias: string | undefined;
}

type StepName =
  | 'check target'
  | 'CreateKey'
  | 'check new key'
  | 'GetParametersForImport'
  | 'wrap key material'
  | 'ImportKeyMaterial'
  | 'CreateAlias'
  | 'verify public key'
  | 'verify test signature';

const stepNumbers: Record<StepName, number> = {
  'check target': 1,
  CreateKey: 1,
  'check new key': 1,
  GetParametersForImport: 2,
  'wrap key material': 3,
  ImportKeyMaterial: 4,
  CreateAlias: 5,
  'verify public key': 6,
  'verify test signature': 6,
};

/** Runs the import steps against one connection. */
export async function importIntoKms(
  kms: KmsConnection,
  target: AwsKmsReference,
  privateKey: KeyObject,
  settings: ImportSettings,
): Promise<AwsKmsImportResult> {
  assertP256PrivateKey(privateKey);
  const run = new ImportRun(kms, settings);
  return run.execute(target, privateKey);
}

class ImportRun {
  readonly #kms: KmsConnection;
  readonly #settings: ImportSettings;
  readonly #algorithm: WrappingAlgorithm;
  readonly #wrappingKeySpec: WrappingKeySpec;
  #keyArn: string | undefined;

  constructor(kms: KmsConnection, settings: ImportSettings) {
    this.#kms = kms;
    this.#settings = settings;
    this.#algorithm = settings.wrappingAlgorithm ?? 'RSA_AES_KEY_WRAP_SHA_256';
    this.#wrappingKeySpec = settings.wrappingKeySpec ?? 'RSA_4096';
  }

  async execute(target: AwsKmsReference, privateKey: KeyObject): Promise<AwsKmsImportResult> {
    const { existing, alias } = await this.#step('check target', () => this.#checkTarget(target));
    await this.#step('check target', () => this.#assertAliasFree(alias, existing));
    this.#keyArn = existing?.Arn;
    if (!this.#keyArn) {
      this.#keyArn = await this.#step('CreateKey', () => this.#createKey());
      await this.#step('check new key', async () => assertKeyFitsAliasArn(this.#keyArn!, target));
    }
    const keyArn = this.#keyArn;

    const parameters = await this.#step('GetParametersForImport', () =>
      this.#getParameters(keyArn),
    );
    const wrapped = await this.#step('wrap key material', async () =>
      wrapKeyMaterial(privateKey, parameters.PublicKey, this.#algorithm, this.#wrappingKeySpec),
    );
    await this.#step('ImportKeyMaterial', () => this.#importMaterial(keyArn, parameters, wrapped));
    if (alias) await this.#step('CreateAlias', () => this.#createAlias(alias, keyArn));

    const publicKey = await this.#prove(keyArn, privateKey);
    return {
      reference: `awskms:${keyArn}`,
      publicKey,
      keyArn,
      alias,
      details: {
        keyArn,
        // The alias ARN carries the key's region, so the reference works without AWS_REGION.
        ...(alias ? { alias, aliasReference: `awskms:${arnScope(keyArn) ?? ''}${alias}` } : {}),
        wrappingAlgorithm: this.#algorithm,
        wrappingKeySpec: this.#wrappingKeySpec,
        createdKey: existing ? 'no' : 'yes',
      },
    };
  }

  async #checkTarget(target: AwsKmsReference) {
    const isAlias = target.kind === 'alias-name' || target.kind === 'alias-arn';
    const requestedAlias =
      this.#settings.alias === undefined ? undefined : parseAlias(this.#settings.alias);
    const alias = isAlias ? aliasName(target.keyId) : requestedAlias;
    if (isAlias && requestedAlias !== undefined && requestedAlias !== alias) {
      throw targetError(
        `the target is alias ${alias}, but the alias setting names ${requestedAlias}. ` +
          'Give the alias once, either as the target or as the alias setting',
      );
    }
    const metadata = await this.#describe(target.keyId, true, this.#settings.signal);
    if (!metadata) {
      if (isAlias) return { existing: undefined, alias };
      throw targetError(`key ${target.keyId} does not exist`);
    }
    assertImportableKey(metadata, target.keyId);
    return { existing: metadata, alias: isAlias ? undefined : alias };
  }

  // An alias given with an existing key must still be free, so that the import cannot stop at
  // CreateAlias after the key material is in.
  async #assertAliasFree(alias: string | undefined, existing: KeyMetadata | undefined) {
    if (alias === undefined || existing === undefined) return;
    const aliasTarget = await this.#describe(alias, true, this.#settings.signal);
    if (aliasTarget)
      throw targetError(`alias ${alias} already points at key ${aliasTarget.Arn ?? '(no ARN)'}`);
  }

  // With allowMissing, returns undefined for a key or alias that does not exist.
  async #describe(
    keyId: string,
    allowMissing: boolean,
    signal: AbortSignal | undefined,
  ): Promise<KeyMetadata | undefined> {
    const command = new this.#kms.sdk.DescribeKeyCommand({ KeyId: keyId });
    try {
      const output = await this.#kms.send<DescribeKeyCommandOutput>(
        'DescribeKey',
        keyId,
        command,
        signal,
      );
      return output.KeyMetadata;
    } catch (error) {
      if (allowMissing && isKmsJwtError(error) && error.code === 'ERR_AWS_KMS_KEY_NOT_FOUND')
        return undefined;
      throw error;
    }
  }

  async #createKey(): Promise<string> {
    const command = new this.#kms.sdk.CreateKeyCommand({
      KeySpec: 'ECC_NIST_P256',
      KeyUsage: 'SIGN_VERIFY',
      Origin: 'EXTERNAL',
      Description: this.#settings.description ?? 'ES256 signing key imported by kms-jwt-signer',
    });
    const output = await this.#kms.send<CreateKeyCommandOutput>(
      'CreateKey',
      'a new key',
      command,
      this.#settings.signal,
    );
    const arn = output.KeyMetadata?.Arn;
    if (!arn) throw new Error('CreateKey returned no key ARN');
    return arn;
  }

  async #getParameters(keyArn: string) {
    const command = new this.#kms.sdk.GetParametersForImportCommand({
      KeyId: keyArn,
      WrappingAlgorithm: this.#algorithm,
      WrappingKeySpec: this.#wrappingKeySpec,
    });
    const output = await this.#kms.send<GetParametersForImportCommandOutput>(
      'GetParametersForImport',
      keyArn,
      command,
      this.#settings.signal,
    );
    if (!output.ImportToken || !output.PublicKey)
      throw new Error('the response has no ImportToken or PublicKey');
    return { ImportToken: output.ImportToken, PublicKey: output.PublicKey };
  }

  async #importMaterial(keyArn: string, parameters: { ImportToken: Uint8Array }, wrapped: Buffer) {
    const command = new this.#kms.sdk.ImportKeyMaterialCommand({
      KeyId: keyArn,
      ImportToken: parameters.ImportToken,
      EncryptedKeyMaterial: wrapped,
      // The SDK's default is KEY_MATERIAL_EXPIRES, which needs a ValidTo date.
      ExpirationModel: 'KEY_MATERIAL_DOES_NOT_EXPIRE',
    });
    await this.#kms.send('ImportKeyMaterial', keyArn, command, this.#settings.signal);
  }

  async #createAlias(alias: string, keyArn: string) {
    const command = new this.#kms.sdk.CreateAliasCommand({ AliasName: alias, TargetKeyId: keyArn });
    await this.#kms.send('CreateAlias', alias, command, this.#settings.signal);
  }

  async #prove(keyArn: string, privateKey: KeyObject): Promise<KeyObject> {
    const signer = new AwsKmsSigner(this.#kms, {
      keyId: keyArn,
      kind: 'key-arn',
      region: undefined,
      endpoint: undefined,
      profile: undefined,
    });
    const expected = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });

    const publicKey = await this.#step('verify public key', async () => {
      const found = await signer.getPublicKey({ signal: this.#settings.signal });
      if (!found.export({ type: 'spki', format: 'der' }).equals(expected)) {
        throw new Error('GetPublicKey returned a different public key than the .p8 holds');
      }
      return found;
    });

    await this.#step('verify test signature', async () => {
      const message = Buffer.concat([Buffer.from('kms-jwt-signer import check '), randomBytes(16)]);
      const signature = await signer.sign(message, { signal: this.#settings.signal });
      if (!verify('sha256', message, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature)) {
        throw new Error('a test signature from the imported key does not verify');
      }
    });
    return publicKey;
  }

  async #step<T>(name: StepName, action: () => Promise<T>): Promise<T> {
    try {
      return await action();
    } catch (error) {
      if (isKmsJwtError(error) && error.code === 'ERR_AWS_KMS_IMPORT_TARGET') throw error;
      throw await this.#failure(name, error);
    }
  }

  async #failure(step: StepName, error: unknown): Promise<BackendError> {
    const keyState = await this.#currentKeyState();
    const text = error instanceof Error ? error.message : String(error);
    // The state of the key follows as a sentence of its own.
    const reason = /[.!?]$/.test(text) ? text : `${text}.`;
    const where = `step ${stepNumbers[step]} (${step})`;
    const leftIn = this.#keyArn
      ? `The KMS key ${this.#keyArn} is left in state ${keyState}. ${adviceFor(step, keyState, this.#keyArn)}`
      : 'No KMS key was created.';
    return new BackendError(
      'ERR_AWS_KMS_IMPORT_FAILED',
      `Import into AWS KMS failed at ${where}: ${reason} ${leftIn}`,
      {
        cause: error,
        details: {
          step,
          stepNumber: stepNumbers[step],
          keyArn: this.#keyArn,
          keyState,
          causeCode: isKmsJwtError(error) ? error.code : undefined,
        },
      },
    );
  }

  // The state is read even after the caller aborted, because the failure message must name the
  // state the key was left in. The call deadline still bounds this one DescribeKey.
  async #currentKeyState(): Promise<string> {
    if (!this.#keyArn) return 'none';
    try {
      const metadata = await this.#describe(this.#keyArn, false, undefined);
      return metadata?.KeyState ?? 'unknown';
    } catch {
      return 'unknown (DescribeKey failed)';
    }
  }
}

function adviceFor(step: StepName, keyState: string, keyArn: string): string {
  if (step === 'check new key') {
    return 'No key material was sent to it: schedule its deletion with "aws kms schedule-key-deletion", then import with credentials and a region that match the target.';
  }
  if (keyState === 'PendingImport') {
    return `Fix the cause and run the import again with --to awskms:${keyArn}, or schedule the key's deletion.`;
  }
  if (step === 'CreateAlias')
    return 'The key material is imported; create the alias with "aws kms create-alias".';
  if (step === 'verify public key' || step === 'verify test signature') {
    return 'Do not use this key: disable it and schedule its deletion, then import again.';
  }
  return 'Check the key with "aws kms describe-key" before using it.';
}

function assertImportableKey(metadata: KeyMetadata, keyId: string): void {
  const found = [
    `Origin ${metadata.Origin}`,
    `KeySpec ${metadata.KeySpec}`,
    `KeyUsage ${metadata.KeyUsage}`,
    `KeyState ${metadata.KeyState}`,
  ].join(', ');
  const importable =
    metadata.Origin === 'EXTERNAL' &&
    metadata.KeySpec === 'ECC_NIST_P256' &&
    metadata.KeyUsage === 'SIGN_VERIFY' &&
    metadata.KeyState === 'PendingImport';
  if (importable && metadata.Arn) return;
  throw targetError(
    `${keyId} names key ${metadata.Arn ?? '(no ARN)'} with ${found}, but an import needs Origin EXTERNAL, ` +
      'KeySpec ECC_NIST_P256, KeyUsage SIGN_VERIFY and KeyState PendingImport. Name a new alias ' +
      'to create a key, or a key created for import that has no material yet',
  );
}

// CreateKey makes the key in the account and region of the credentials and client in use, but
// an alias can only point at a key of its own account and region. A target alias ARN of another
// account or region would put the key material where the caller did not name it.
function assertKeyFitsAliasArn(keyArn: string, target: AwsKmsReference): void {
  if (target.kind !== 'alias-arn') return;
  const scope = arnScope(target.keyId)!;
  if (keyArn.startsWith(scope)) return;
  throw new Error(
    `the new key ${keyArn} is not in the partition, region and account of the target ` +
      `${target.keyId}, so the alias could not point at it.`,
  );
}

function targetError(problem: string): BackendError {
  return new BackendError(
    'ERR_AWS_KMS_IMPORT_TARGET',
    `Import into AWS KMS stopped at step 1 (check target): ${problem}. No KMS key was changed.`,
    { details: { step: 'check target', stepNumber: 1 } },
  );
}

// Accepts `alias/NAME` or a bare NAME, with the characters AWS KMS allows in alias names.
function parseAlias(text: string): string {
  const alias = text.startsWith('alias/') ? text : `alias/${text}`;
  if (!/^alias\/[A-Za-z0-9/_-]{1,250}$/.test(alias) || alias.startsWith('alias/aws/')) {
    throw targetError(
      `alias ${JSON.stringify(text)} is invalid. An alias is alias/NAME, where NAME has 1 to 250 ` +
        'letters, digits, "/", "_" or "-" and does not start with aws/',
    );
  }
  return alias;
}

// CreateAlias takes the alias name, also when the reference gave an alias ARN.
function aliasName(keyId: string): string {
  return keyId.startsWith('arn:') ? keyId.slice(keyId.indexOf(':alias/') + 1) : keyId;
}

function assertP256PrivateKey(privateKey: KeyObject): void {
  const isP256 =
    privateKey?.type === 'private' &&
    privateKey.asymmetricKeyType === 'ec' &&
    privateKey.asymmetricKeyDetails?.namedCurve === 'prime256v1';
  if (isP256) return;
  const found =
    privateKey?.type === 'private'
      ? `${privateKey.asymmetricKeyType} ${privateKey.asymmetricKeyDetails?.namedCurve ?? ''}`.trim()
      : String(privateKey?.type);
  throw new KeyError(
    'ERR_KEY_NOT_P256',
    `The key to import is ${found}, but AWS KMS ECC_NIST_P256 needs a P-256 private key.`,
    {
      details: { found },
    },
  );
}
