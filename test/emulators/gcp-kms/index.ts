/**
 * A Cloud KMS emulator: a grpc-js server on 127.0.0.1 that serves
 * google.cloud.kms.v1.KeyManagementService from the protos shipped in the installed
 * @google-cloud/kms and google-gax packages. It keeps real keys, signs digests with real ECDSA,
 * unwraps imported keys for real, checks digestCrc32c like the service, and fails with real
 * gRPC status codes. Fault switches make it misbehave in each way the adapter must survive.
 *
 * It imports no test framework, so tests, benchmarks and manual runs can all use it:
 *
 *   const emulator = await new GcpKmsEmulator().start();
 *   const key = emulator.createKey({ keyRing: 'projects/p/locations/global/keyRings/r' });
 *   ...
 *   await emulator.stop();
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import {
  crc32cString,
  describeKey,
  generatePrivateKey,
  generateWrappingKey,
  importMethods,
  keyAlgorithms,
  keyFitsAlgorithm,
  signDigest,
  unwrapImportedKey,
  type KeyAlgorithm,
} from './crypto.js';

const Status = grpc.status;

/** Misbehaviours, each a count of the next calls it applies to (Infinity for all of them). */
export interface GcpKmsFaults {
  /** The next N calls of any method fail with UNAVAILABLE. */
  unavailable: number;
  /** The next N AsymmetricSign responses carry a signatureCrc32c that does not match. */
  wrongSignatureCrc32c: number;
  /** The next N AsymmetricSign responses set verifiedDigestCrc32c to false. */
  unverifiedDigest: number;
  /** The next N AsymmetricSign and GetPublicKey responses name another version. */
  wrongName: number;
  /** The next N GetPublicKey responses carry a pemCrc32c that does not match. */
  wrongPemCrc32c: number;
  /** The next N AsymmetricSign calls fail with PERMISSION_DENIED. */
  permissionDenied: number;
  /** The next N AsymmetricSign calls fail with FAILED_PRECONDITION, as for a DISABLED version. */
  failedPrecondition: number;
  /** The next N AsymmetricSign calls fail with RESOURCE_EXHAUSTED, as for a spent quota. */
  resourceExhausted: number;
  /** The next N AsymmetricSign calls fail with NOT_FOUND, as for a missing version. */
  notFound: number;
  /** The next N AsymmetricSign calls fail with INTERNAL, as for a failure inside the service. */
  internal: number;
  /** The next N calls of any method fail with UNAUTHENTICATED, as for an expired access token. */
  unauthenticated: number;
  /** The next N CreateImportJob calls fail with ALREADY_EXISTS, as when the job ID is taken. */
  importJobExists: number;
  /** The next N AsymmetricSign digests get one bit flipped on arrival, as by a faulty network,
   * so the digestCrc32c check fails with INVALID_ARGUMENT like the service's. */
  corruptDigest: number;
  /** The next N AsymmetricSign signatures lose their last byte; the CRC covers the cut bytes. */
  truncatedDer: number;
  /** The next N AsymmetricSign signatures come from another key, with correct CRCs. */
  foreignSignature: number;
  /** The next N GetPublicKey responses carry that other key's public key, with correct CRCs. */
  foreignPublicKey: number;
  /** The next N ListCryptoKeyVersions responses carry a nextPageToken, so paging never ends. */
  endlessPages: number;
  /** The next N ImportCryptoKeyVersion calls flip a bit of the wrapped key before unwrapping. */
  corruptWrappedKey: number;
  /** The next N calls of any method wait `slowMs` before answering. */
  slow: number;
  slowMs: number;
  /** Methods that always answer PERMISSION_DENIED, such as 'GetCryptoKeyVersion'. */
  deniedMethods: string[];
  /** The text (gRPC `details`) of every failure status while set, as a hostile server sends. */
  statusText: string | undefined;
  /** The importFailureReason of every failed import while set. */
  importFailureReason: string | undefined;
  /**
   * The `name` of every AsymmetricSign, GetPublicKey and GetCryptoKeyVersion reply, and of every
   * version that ListCryptoKeyVersions returns, while set.
   */
  responseName: string | undefined;
  /** The PEM of every GetPublicKey reply while set, sent with its own correct pemCrc32c. */
  publicKeyPem: string | undefined;
  /** The `name` of every CreateImportJob reply while set; the job is still created. */
  importJobName: string | undefined;
  /** The `name` of every ImportCryptoKeyVersion reply while set; the version is still created. */
  importedVersionName: string | undefined;
}

/** One received call, for tests that count attempts or read headers. */
export interface CallRecord {
  method: string;
  request: Record<string, unknown>;
  metadata: Record<string, unknown>;
}

interface VersionRecord {
  name: string;
  state: string;
  algorithm: string;
  protectionLevel: string;
  privateKey: KeyObject | undefined;
  importJob?: string;
  importFailureReason?: string;
  pendingPolls: number;
  pendingOutcome?: { privateKey?: KeyObject; failure?: string };
}

interface CryptoKeyRecord {
  name: string;
  purpose: string;
  importOnly: boolean;
  algorithm: string;
  protectionLevel: string;
  versions: Map<number, VersionRecord>;
  nextVersion: number;
}

interface ImportJobRecord {
  name: string;
  importMethod: string;
  protectionLevel: string;
  state: string;
  wrappingKey: KeyObject | undefined;
  pendingPolls: number;
}

/** What {@link GcpKmsEmulator.createKey} returns. */
export interface EmulatedKey {
  cryptoKeyName: string;
  versionName: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

type Handler = (request: Record<string, unknown>) => Promise<unknown> | unknown;

/** A google.rpc.Status failure raised inside a handler. */
class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

function noFaults(): GcpKmsFaults {
  return {
    unavailable: 0,
    wrongSignatureCrc32c: 0,
    unverifiedDigest: 0,
    wrongName: 0,
    wrongPemCrc32c: 0,
    permissionDenied: 0,
    failedPrecondition: 0,
    resourceExhausted: 0,
    notFound: 0,
    internal: 0,
    unauthenticated: 0,
    importJobExists: 0,
    corruptDigest: 0,
    truncatedDer: 0,
    foreignSignature: 0,
    foreignPublicKey: 0,
    endlessPages: 0,
    corruptWrappedKey: 0,
    slow: 0,
    slowMs: 0,
    deniedMethods: [],
    statusText: undefined,
    importFailureReason: undefined,
    responseName: undefined,
    publicKeyPem: undefined,
    importedVersionName: undefined,
    importJobName: undefined,
  };
}

/** The emulator. Not safe to share between test files running in parallel processes. */
export class GcpKmsEmulator {
  readonly host = '127.0.0.1';
  port = 0;
  faults: GcpKmsFaults = noFaults();
  readonly calls: CallRecord[] = [];
  /** GetImportJob polls that still see PENDING_GENERATION for a new job. */
  importJobPendingPolls = 1;
  /** GetCryptoKeyVersion polls that still see PENDING_IMPORT for a new imported version. */
  importPendingPolls = 1;

  #server: grpc.Server | undefined;
  readonly #keyRings = new Set<string>();
  readonly #keys = new Map<string, CryptoKeyRecord>();
  readonly #jobs = new Map<string, ImportJobRecord>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #foreignKey = generatePrivateKey('EC_SIGN_P256_SHA256');

  /**
   * Starts listening on 127.0.0.1 on a free port, over plaintext gRPC, or over TLS with the
   * given PEM key and certificate.
   */
  async start(tls?: { key: Buffer; cert: Buffer }): Promise<this> {
    const server = new grpc.Server();
    server.addService(loadServiceDefinition(), this.#implementation());
    const credentials = tls
      ? grpc.ServerCredentials.createSsl(null, [{ private_key: tls.key, cert_chain: tls.cert }])
      : grpc.ServerCredentials.createInsecure();
    this.port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${this.host}:0`, credentials, (error, port) =>
        error ? reject(error) : resolve(port),
      );
    });
    this.#server = server;
    return this;
  }

  /** Stops the server, dropping open calls and pending slow answers. */
  async stop(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#server?.forceShutdown();
    this.#server = undefined;
  }

  /** Clears every fault switch and the call log. */
  reset(): void {
    this.faults = noFaults();
    this.calls.length = 0;
  }

  /** Returns a reference that reaches this emulator over plaintext loopback gRPC. */
  reference(resourceName: string): string {
    return `gcpkms:${resourceName}?endpoint=${this.host}:${this.port}&plaintext=true`;
  }

  addKeyRing(name: string): void {
    this.#keyRings.add(name);
  }

  /** Creates a CryptoKey with one version holding a fresh key, or the given one. */
  createKey(options: {
    keyRing: string;
    cryptoKeyId?: string;
    algorithm?: KeyAlgorithm;
    privateKey?: KeyObject;
    state?: string;
    protectionLevel?: string;
  }): EmulatedKey {
    this.addKeyRing(options.keyRing);
    const algorithm = options.algorithm ?? 'EC_SIGN_P256_SHA256';
    const cryptoKeyName = `${options.keyRing}/cryptoKeys/${options.cryptoKeyId ?? `key-${this.#keys.size + 1}`}`;
    const key: CryptoKeyRecord = {
      name: cryptoKeyName,
      purpose: 'ASYMMETRIC_SIGN',
      importOnly: false,
      algorithm,
      protectionLevel: options.protectionLevel ?? 'HSM',
      versions: new Map(),
      nextVersion: 1,
    };
    this.#keys.set(cryptoKeyName, key);
    return this.addVersion(cryptoKeyName, options);
  }

  /** Adds a version to an existing CryptoKey. */
  addVersion(
    cryptoKeyName: string,
    options: { algorithm?: KeyAlgorithm; privateKey?: KeyObject; state?: string } = {},
  ): EmulatedKey {
    const key = this.#keys.get(cryptoKeyName)!;
    const algorithm = options.algorithm ?? (key.algorithm as KeyAlgorithm);
    const privateKey = options.privateKey ?? generatePrivateKey(algorithm);
    const versionName = `${cryptoKeyName}/cryptoKeyVersions/${key.nextVersion}`;
    key.versions.set(key.nextVersion++, {
      name: versionName,
      state: options.state ?? 'ENABLED',
      algorithm,
      protectionLevel: key.protectionLevel,
      privateKey,
      pendingPolls: 0,
    });
    return { cryptoKeyName, versionName, privateKey, publicKey: createPublicKey(privateKey) };
  }

  /** Sets a version's state directly, as an administrator would. */
  setVersionState(versionName: string, state: string): void {
    this.#version(versionName).state = state;
  }

  /** The private key an imported version holds, for tests that compare it with the source. */
  versionPrivateKey(versionName: string): KeyObject | undefined {
    return this.#version(versionName).privateKey;
  }

  /** Counts calls of one method since the last reset. */
  count(method: string): number {
    return this.calls.filter((call) => call.method === method).length;
  }

  #implementation(): grpc.UntypedServiceImplementation {
    const handlers: Record<string, Handler> = {
      AsymmetricSign: (r) => this.#asymmetricSign(r),
      GetPublicKey: (r) => this.#getPublicKey(r),
      GetCryptoKeyVersion: (r) => this.#getCryptoKeyVersion(r),
      ListCryptoKeyVersions: (r) => this.#listCryptoKeyVersions(r),
      GetCryptoKey: (r) => this.#cryptoKeyResource(this.#cryptoKey(String(r.name))),
      CreateCryptoKey: (r) => this.#createCryptoKey(r),
      CreateImportJob: (r) => this.#createImportJob(r),
      GetImportJob: (r) => this.#getImportJob(r),
      ImportCryptoKeyVersion: (r) => this.#importCryptoKeyVersion(r),
      UpdateCryptoKeyVersion: (r) => this.#updateCryptoKeyVersion(r),
    };
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const [method, handler] of Object.entries(handlers)) {
      implementation[method] = (
        call: grpc.ServerUnaryCall<unknown, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        this.#serve(method, handler, call, callback);
      };
    }
    return implementation;
  }

  #serve(
    method: string,
    handler: Handler,
    call: grpc.ServerUnaryCall<unknown, unknown>,
    callback: grpc.sendUnaryData<unknown>,
  ): void {
    const request = call.request as Record<string, unknown>;
    this.calls.push({ method, request, metadata: call.metadata.getMap() });
    const answer = async () => {
      if (this.faults.unavailable > 0) {
        this.faults.unavailable--;
        throw new RpcError(Status.UNAVAILABLE, 'The service is currently unavailable.');
      }
      if (take(this.faults, 'unauthenticated')) throw unauthenticated();
      if (this.faults.deniedMethods.includes(method)) throw this.#denied(method, request);
      return handler(request);
    };
    const reply = () =>
      answer().then(
        (response) => callback(null, response),
        (error: unknown) => callback(this.#statusFor(error)),
      );

    if (this.faults.slow > 0) {
      this.faults.slow--;
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        void reply();
      }, this.faults.slowMs);
      this.#timers.add(timer);
      return;
    }
    void reply();
  }

  #statusFor(error: unknown): Partial<grpc.StatusObject> {
    const status = toServiceError(error);
    return this.faults.statusText === undefined
      ? status
      : { ...status, details: this.faults.statusText };
  }

  #denied(method: string, request: Record<string, unknown>): RpcError {
    const permissions: Record<string, string> = {
      AsymmetricSign: 'cloudkms.cryptoKeyVersions.useToSign',
      GetPublicKey: 'cloudkms.cryptoKeyVersions.viewPublicKey',
      GetCryptoKeyVersion: 'cloudkms.cryptoKeyVersions.get',
      ListCryptoKeyVersions: 'cloudkms.cryptoKeyVersions.list',
    };
    const resource = String(request.name ?? request.parent ?? '');
    const permission = permissions[method] ?? 'cloudkms.cryptoKeys.create';
    return new RpcError(
      Status.PERMISSION_DENIED,
      `Permission '${permission}' denied on resource '${resource}' (or it may not exist).`,
    );
  }

  #asymmetricSign(request: Record<string, unknown>): unknown {
    const version = this.#usableVersion(String(request.name), 'AsymmetricSign');
    if (take(this.faults, 'permissionDenied')) throw this.#denied('AsymmetricSign', request);
    if (take(this.faults, 'failedPrecondition')) {
      throw new RpcError(
        Status.FAILED_PRECONDITION,
        `${version.name} is not enabled, current state is: DISABLED.`,
      );
    }
    if (take(this.faults, 'resourceExhausted')) {
      throw new RpcError(
        Status.RESOURCE_EXHAUSTED,
        "Quota exceeded for quota metric 'Cryptographic requests' and limit " +
          "'Cryptographic requests per minute' of service 'cloudkms.googleapis.com'.",
      );
    }
    if (take(this.faults, 'notFound')) {
      throw new RpcError(Status.NOT_FOUND, `${version.name} not found.`);
    }
    if (take(this.faults, 'internal')) {
      throw new RpcError(Status.INTERNAL, 'Internal error encountered.');
    }
    let digest = readDigest(request, version.algorithm);
    if (take(this.faults, 'corruptDigest')) {
      digest = Buffer.from(digest);
      digest[0]! ^= 0x80;
    }
    const digestCrc = (request.digestCrc32c as { value?: string } | undefined)?.value;
    if (digestCrc !== undefined && digestCrc !== crc32cString(digest)) {
      throw new RpcError(
        Status.INVALID_ARGUMENT,
        'The checksum in field digest_crc32c did not match the data in field digest.',
      );
    }
    if (!version.algorithm.startsWith('EC_SIGN_')) {
      throw new RpcError(Status.INVALID_ARGUMENT, 'The emulator signs with EC keys only.');
    }

    const signer = take(this.faults, 'foreignSignature') ? this.#foreignKey : version.privateKey!;
    let signature = signDigest(signer, version.algorithm, digest);
    if (take(this.faults, 'truncatedDer')) signature = signature.subarray(0, signature.length - 1);
    let signatureCrc = crc32cString(signature);
    if (take(this.faults, 'wrongSignatureCrc32c'))
      signatureCrc = String((Number(signatureCrc) + 1) >>> 0);
    return {
      signature,
      signatureCrc32c: { value: signatureCrc },
      verifiedDigestCrc32c: digestCrc !== undefined && !take(this.faults, 'unverifiedDigest'),
      verifiedDataCrc32c: false,
      name: this.#replyName(version.name),
      protectionLevel: version.protectionLevel,
    };
  }

  /** Returns the name for a sign or public-key reply: the version's, unless a fault changes it. */
  #replyName(name: string): string {
    if (this.faults.responseName !== undefined) return this.faults.responseName;
    return take(this.faults, 'wrongName') ? otherVersionName(name) : name;
  }

  #getPublicKey(request: Record<string, unknown>): unknown {
    const version = this.#usableVersion(String(request.name), 'GetPublicKey');
    const holder = take(this.faults, 'foreignPublicKey') ? this.#foreignKey : version.privateKey!;
    const pem =
      this.faults.publicKeyPem ??
      createPublicKey(holder).export({ type: 'spki', format: 'pem' }).toString();
    let pemCrc = crc32cString(Buffer.from(pem, 'utf8'));
    if (take(this.faults, 'wrongPemCrc32c')) pemCrc = String((Number(pemCrc) ^ 0x10) >>> 0);
    return {
      pem,
      pemCrc32c: { value: pemCrc },
      algorithm: version.algorithm,
      name: this.#replyName(version.name),
      protectionLevel: version.protectionLevel,
      publicKeyFormat: 'PEM',
    };
  }

  #getCryptoKeyVersion(request: Record<string, unknown>): unknown {
    const version = this.#version(String(request.name));
    // Only versions made by ImportCryptoKeyVersion finish importing; one that a test created in
    // PENDING_IMPORT stays there.
    if (version.state === 'PENDING_IMPORT' && version.pendingOutcome) this.#advanceImport(version);
    const resource = versionResource(version);
    const name = this.faults.responseName;
    return name === undefined ? resource : { ...resource, name };
  }

  #listCryptoKeyVersions(request: Record<string, unknown>): unknown {
    const key = this.#cryptoKey(String(request.parent));
    const state = parseStateFilter(String(request.filter ?? ''));
    const name = this.faults.responseName;
    const versions = [...key.versions.values()]
      .filter((version) => state === undefined || version.state === state)
      .map(versionResource)
      .map((resource) => (name === undefined ? resource : { ...resource, name }));
    const nextPageToken = take(this.faults, 'endlessPages') ? `page-${this.calls.length}` : '';
    return { cryptoKeyVersions: versions, nextPageToken, totalSize: versions.length };
  }

  #createCryptoKey(request: Record<string, unknown>): unknown {
    const parent = String(request.parent);
    if (!this.#keyRings.has(parent))
      throw new RpcError(Status.NOT_FOUND, `KeyRing ${parent} not found.`);
    const cryptoKeyId = String(request.cryptoKeyId ?? '');
    if (!/^[A-Za-z0-9_-]{1,63}$/.test(cryptoKeyId)) {
      throw new RpcError(Status.INVALID_ARGUMENT, `Invalid crypto_key_id "${cryptoKeyId}".`);
    }
    const name = `${parent}/cryptoKeys/${cryptoKeyId}`;
    if (this.#keys.has(name))
      throw new RpcError(Status.ALREADY_EXISTS, `CryptoKey ${name} already exists.`);

    const body = (request.cryptoKey ?? {}) as Record<string, unknown>;
    const template = (body.versionTemplate ?? {}) as Record<string, unknown>;
    const algorithm = String(template.algorithm ?? '');
    if (body.purpose !== 'ASYMMETRIC_SIGN' || !Object.hasOwn(keyAlgorithms, algorithm)) {
      throw new RpcError(
        Status.INVALID_ARGUMENT,
        `The emulator creates ASYMMETRIC_SIGN keys of ${Object.keys(keyAlgorithms).join(', ')} only.`,
      );
    }
    if (body.importOnly === true && request.skipInitialVersionCreation !== true) {
      throw new RpcError(
        Status.INVALID_ARGUMENT,
        'An import_only CryptoKey needs skip_initial_version_creation.',
      );
    }
    const record: CryptoKeyRecord = {
      name,
      purpose: 'ASYMMETRIC_SIGN',
      importOnly: body.importOnly === true,
      algorithm,
      protectionLevel: String(template.protectionLevel ?? 'SOFTWARE'),
      versions: new Map(),
      nextVersion: 1,
    };
    this.#keys.set(name, record);
    if (request.skipInitialVersionCreation !== true) this.addVersion(name);
    return this.#cryptoKeyResource(record);
  }

  #cryptoKeyResource(key: CryptoKeyRecord): unknown {
    return {
      name: key.name,
      purpose: key.purpose,
      importOnly: key.importOnly,
      versionTemplate: { algorithm: key.algorithm, protectionLevel: key.protectionLevel },
    };
  }

  async #createImportJob(request: Record<string, unknown>): Promise<unknown> {
    const parent = String(request.parent);
    if (!this.#keyRings.has(parent))
      throw new RpcError(Status.NOT_FOUND, `KeyRing ${parent} not found.`);
    const name = `${parent}/importJobs/${String(request.importJobId)}`;
    if (this.#jobs.has(name) || take(this.faults, 'importJobExists'))
      throw new RpcError(Status.ALREADY_EXISTS, `ImportJob ${name} already exists.`);
    const body = (request.importJob ?? {}) as Record<string, unknown>;
    const method = importMethods[String(body.importMethod)];
    if (!method)
      throw new RpcError(
        Status.INVALID_ARGUMENT,
        `Unsupported import_method ${String(body.importMethod)}.`,
      );
    const level = String(body.protectionLevel ?? '');
    if (level !== 'HSM' && level !== 'SOFTWARE') {
      throw new RpcError(
        Status.INVALID_ARGUMENT,
        'ImportJob.protection_level must be HSM or SOFTWARE.',
      );
    }

    const job: ImportJobRecord = {
      name,
      importMethod: String(body.importMethod),
      protectionLevel: level,
      state: 'PENDING_GENERATION',
      wrappingKey: await generateWrappingKey(method.modulusBits),
      pendingPolls: this.importJobPendingPolls,
    };
    this.#jobs.set(name, job);
    const replyName = this.faults.importJobName;
    return replyName === undefined ? jobResource(job) : { ...jobResource(job), name: replyName };
  }

  #getImportJob(request: Record<string, unknown>): unknown {
    const job = this.#jobs.get(String(request.name));
    if (!job) throw new RpcError(Status.NOT_FOUND, `ImportJob ${String(request.name)} not found.`);
    if (job.state === 'PENDING_GENERATION' && job.pendingPolls-- <= 0) job.state = 'ACTIVE';
    return jobResource(job);
  }

  #importCryptoKeyVersion(request: Record<string, unknown>): unknown {
    const key = this.#cryptoKey(String(request.parent));
    const job = this.#jobs.get(String(request.importJob));
    if (!job)
      throw new RpcError(Status.NOT_FOUND, `ImportJob ${String(request.importJob)} not found.`);
    if (job.state !== 'ACTIVE') {
      throw new RpcError(
        Status.FAILED_PRECONDITION,
        `ImportJob ${job.name} is ${job.state}, not ACTIVE.`,
      );
    }
    if (job.protectionLevel !== key.protectionLevel) {
      throw new RpcError(
        Status.FAILED_PRECONDITION,
        'The ImportJob and the CryptoKey protection levels differ.',
      );
    }
    const algorithm = String(request.algorithm);
    if (algorithm !== key.algorithm) {
      throw new RpcError(
        Status.INVALID_ARGUMENT,
        `Algorithm ${algorithm} does not match the key's ${key.algorithm}.`,
      );
    }
    const received = request.wrappedKey ?? request.rsaAesWrappedKey;
    if (!(received instanceof Buffer) || received.length === 0) {
      throw new RpcError(Status.INVALID_ARGUMENT, 'wrapped_key is required.');
    }
    const wrapped = Buffer.from(received);
    if (take(this.faults, 'corruptWrappedKey')) wrapped[wrapped.length - 1]! ^= 0x01;

    const version: VersionRecord = {
      name: `${key.name}/cryptoKeyVersions/${key.nextVersion}`,
      state: 'PENDING_IMPORT',
      algorithm,
      protectionLevel: key.protectionLevel,
      privateKey: undefined,
      importJob: job.name,
      pendingPolls: this.importPendingPolls,
      pendingOutcome: unwrapOutcome(wrapped, job, algorithm),
    };
    key.versions.set(key.nextVersion++, version);
    const name = this.faults.importedVersionName;
    return name === undefined ? versionResource(version) : { ...versionResource(version), name };
  }

  #updateCryptoKeyVersion(request: Record<string, unknown>): unknown {
    const body = (request.cryptoKeyVersion ?? {}) as Record<string, unknown>;
    const paths = ((request.updateMask as { paths?: string[] } | undefined)?.paths ?? []).join(',');
    if (paths !== 'state')
      throw new RpcError(Status.INVALID_ARGUMENT, 'The emulator updates the state only.');
    const version = this.#version(String(body.name));
    const state = String(body.state);
    const movable = ['ENABLED', 'DISABLED'];
    if (!movable.includes(state) || !movable.includes(version.state)) {
      throw new RpcError(
        Status.FAILED_PRECONDITION,
        `Cannot move ${version.name} from ${version.state} to ${state}.`,
      );
    }
    version.state = state;
    return versionResource(version);
  }

  #advanceImport(version: VersionRecord): void {
    if (version.pendingPolls-- > 0) return;
    const outcome = version.pendingOutcome ?? {};
    version.pendingOutcome = undefined;
    version.privateKey = outcome.privateKey;
    version.state = outcome.failure ? 'IMPORT_FAILED' : 'ENABLED';
    if (outcome.failure) {
      version.importFailureReason = this.faults.importFailureReason ?? outcome.failure;
    }
  }

  #usableVersion(name: string, method: string): VersionRecord {
    const version = this.#version(name);
    if (version.state !== 'ENABLED') {
      throw new RpcError(
        Status.FAILED_PRECONDITION,
        `${method}: ${name} is not enabled, current state is: ${version.state}.`,
      );
    }
    return version;
  }

  #version(name: string): VersionRecord {
    const match = /^(.*)\/cryptoKeyVersions\/(\d+)$/.exec(name);
    const version = match ? this.#keys.get(match[1]!)?.versions.get(Number(match[2])) : undefined;
    if (!version) throw new RpcError(Status.NOT_FOUND, `${name} not found.`);
    return version;
  }

  #cryptoKey(name: string): CryptoKeyRecord {
    const key = this.#keys.get(name);
    if (!key) throw new RpcError(Status.NOT_FOUND, `CryptoKey ${name} not found.`);
    return key;
  }
}

/** Convenience: creates and starts an emulator. */
export function startGcpKmsEmulator(): Promise<GcpKmsEmulator> {
  return new GcpKmsEmulator().start();
}

/**
 * Returns the folders the emulator loads its protos from: those shipped in the installed
 * @google-cloud/kms (the KMS service) and google-gax (google/api, google/protobuf and the
 * other imports), so that the emulator speaks exactly the client's wire format.
 */
export function protoDirectories(): string[] {
  const require = createRequire(import.meta.url);
  // Both packages block package.json in their exports map, so their protos are found next to
  // their main files: build/src/index.js -> build/protos.
  const kmsProtos = join(dirname(require.resolve('@google-cloud/kms')), '..', 'protos');
  const gaxProtos = join(dirname(require.resolve('google-gax')), '..', 'protos');
  return [kmsProtos, gaxProtos];
}

function loadServiceDefinition(): grpc.ServiceDefinition {
  const definition = protoLoader.loadSync('google/cloud/kms/v1/service.proto', {
    includeDirs: protoDirectories(),
    keepCase: false,
    longs: String,
    enums: String,
    defaults: false,
    oneofs: true,
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    google: {
      cloud: { kms: { v1: { KeyManagementService: { service: grpc.ServiceDefinition } } } };
    };
  };
  return loaded.google.cloud.kms.v1.KeyManagementService.service;
}

/** The status Google's front end returns for a missing, expired or revoked access token. */
function unauthenticated(): RpcError {
  return new RpcError(
    Status.UNAUTHENTICATED,
    'Request had invalid authentication credentials. Expected OAuth 2 access token, login ' +
      'cookie or other valid authentication credential. See ' +
      'https://developers.google.com/identity/sign-in/web/devconsole-project.',
  );
}

function take(faults: GcpKmsFaults, name: keyof GcpKmsFaults): boolean {
  const remaining = faults[name];
  if (typeof remaining !== 'number' || remaining <= 0) return false;
  (faults[name] as number) = remaining - 1;
  return true;
}

/**
 * Reads a ListCryptoKeyVersions filter. Cloud KMS accepts a filter on any field, but the
 * emulator takes `state=STATE` or none, and returns INVALID_ARGUMENT for anything else.
 */
function parseStateFilter(filter: string): string | undefined {
  if (filter === '') return undefined;
  const match = /^state\s*=\s*([A-Z_]+)$/.exec(filter.trim());
  if (!match) {
    throw new RpcError(Status.INVALID_ARGUMENT, `The emulator filters on state only: "${filter}".`);
  }
  return match[1];
}

function readDigest(request: Record<string, unknown>, algorithm: string): Buffer {
  if (request.data !== undefined && (request.data as Buffer).length > 0) {
    throw new RpcError(Status.INVALID_ARGUMENT, 'The emulator accepts digest, not data.');
  }
  const digest = (request.digest ?? {}) as Record<string, unknown>;
  const sha256 = digest.sha256;
  if (!(sha256 instanceof Buffer) || digest.sha384 !== undefined || digest.sha512 !== undefined) {
    throw new RpcError(Status.INVALID_ARGUMENT, `${algorithm} needs digest.sha256.`);
  }
  if (sha256.length !== 32) {
    throw new RpcError(
      Status.INVALID_ARGUMENT,
      `Digest has incorrect size ${sha256.length}; expected 32.`,
    );
  }
  return sha256;
}

function unwrapOutcome(
  wrapped: Buffer,
  job: ImportJobRecord,
  algorithm: string,
): VersionRecord['pendingOutcome'] {
  try {
    const privateKey = unwrapImportedKey(wrapped, job.importMethod, job.wrappingKey!);
    if (!keyFitsAlgorithm(privateKey, algorithm)) {
      return {
        failure: `The imported key is ${describeKey(privateKey)}, which does not match ${algorithm}.`,
      };
    }
    return { privateKey };
  } catch (error) {
    return { failure: `Failed to unwrap the key material: ${(error as Error).message}` };
  }
}

function versionResource(version: VersionRecord): Record<string, unknown> {
  return {
    name: version.name,
    state: version.state,
    algorithm: version.algorithm,
    protectionLevel: version.protectionLevel,
    ...(version.importJob ? { importJob: version.importJob } : {}),
    ...(version.importFailureReason ? { importFailureReason: version.importFailureReason } : {}),
  };
}

function jobResource(job: ImportJobRecord): Record<string, unknown> {
  const active = job.state === 'ACTIVE';
  const pem = active
    ? createPublicKey(job.wrappingKey!).export({ type: 'spki', format: 'pem' })
    : undefined;
  return {
    name: job.name,
    importMethod: job.importMethod,
    protectionLevel: job.protectionLevel,
    state: job.state,
    ...(pem ? { publicKey: { pem: pem.toString() } } : {}),
  };
}

function otherVersionName(name: string): string {
  return name.replace(/\/(\d+)$/, (_, number: string) => `/${Number(number) + 100}`);
}

function toServiceError(error: unknown): Partial<grpc.StatusObject> {
  if (error instanceof RpcError) return { code: error.code, details: error.message };
  return { code: Status.INTERNAL, details: `Emulator error: ${(error as Error).message}` };
}
