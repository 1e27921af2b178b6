/**
 * Parses Google Cloud KMS key references. Accepted forms:
 *
 * - `gcpkms:projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N`;
 * - the sigstore form `gcpkms://projects/...`, which may spell the last collection `versions`;
 * - the smallstep forms `cloudkms:projects/...` and `cloudkms:resource=projects/...`.
 *
 * Query attributes follow `?`, `&`-separated: `endpoint=HOST:PORT` and `plaintext=true` choose
 * where the client connects, and `protection-level`, `import-method` and `import-job` steer an
 * import. Resource names follow the Cloud KMS "Resource hierarchy" page:
 * projects/{project}/locations/{location}/keyRings/{keyRing}/cryptoKeys/{cryptoKey}/
 * cryptoKeyVersions/{version}.
 */
import { isIP } from 'node:net';
import { KmsJwtError } from '../../src/errors.js';
import { parseReferenceAttributes, type KeyReference } from '../../src/key-uri.js';

/** Where the client connects when the reference carries an `endpoint` attribute. */
export interface GcpKmsEndpoint {
  host: string;
  port: number;
  /** True for a plaintext gRPC channel with no credentials, allowed for loopback hosts only. */
  plaintext: boolean;
}

/** Import settings from the reference's query attributes. */
export interface GcpKmsImportSettings {
  protectionLevel: 'HSM' | 'SOFTWARE' | undefined;
  importMethod: string | undefined;
  importJobId: string | undefined;
}

/** A Google Cloud KMS reference after parsing. */
export interface GcpKmsReference {
  /** The CryptoKey resource name: `projects/P/locations/L/keyRings/R/cryptoKeys/K`. */
  cryptoKeyName: string;
  /** The CryptoKeyVersion resource name, or undefined when the reference stops at the CryptoKey. */
  versionName: string | undefined;
  /** The KeyRing resource name, the parent of the CryptoKey. */
  keyRingName: string;
  /** The CryptoKey ID, the last segment of `cryptoKeyName`. */
  cryptoKeyId: string;
  /** A custom endpoint, or undefined for the client's default (cloudkms.googleapis.com:443). */
  endpoint: GcpKmsEndpoint | undefined;
  importSettings: GcpKmsImportSettings;
}

const label = 'gcpkms';

const expectedForms =
  'Use gcpkms:projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY/' +
  'cryptoKeyVersions/N (or gcpkms://projects/..., cloudkms:projects/..., ' +
  'cloudkms:resource=projects/...)';

// A project ID is 6-30 lower-case letters, digits and hyphens; older domain-scoped projects add
// "example.com:" in front, and a project number is all digits.
const projectPattern = /^(?:[a-z0-9][a-z0-9.-]*:)?[a-z0-9][a-z0-9-]*$/;
const locationPattern = /^[a-z0-9-]+$/;
// KeyRing and CryptoKey IDs match [a-zA-Z0-9_-]{1,63} (Cloud KMS CreateKeyRing and
// CreateCryptoKey reference pages).
const idPattern = /^[A-Za-z0-9_-]{1,63}$/;
const versionPattern = /^[1-9][0-9]{0,18}$/;
const loopbackNames = new Set(['localhost', '::1']);
const queryAttributes = new Set([
  'endpoint',
  'plaintext',
  'protection-level',
  'import-method',
  'import-job',
]);

/**
 * Parses the part of a `gcpkms:` or `cloudkms:` reference after the scheme.
 *
 * @example
 * parseGcpKmsReference(parseKeyReference(
 *   'gcpkms:projects/acme/locations/global/keyRings/apple/cryptoKeys/siwa/cryptoKeyVersions/3',
 * )).versionName;
 * // 'projects/acme/locations/global/keyRings/apple/cryptoKeys/siwa/cryptoKeyVersions/3'
 */
export function parseGcpKmsReference(reference: KeyReference): GcpKmsReference {
  const question = reference.rest.indexOf('?');
  const pathPart = question === -1 ? reference.rest : reference.rest.slice(0, question);
  const queryPart = question === -1 ? '' : reference.rest.slice(question);
  const query = parseReferenceAttributes(queryPart, label).query;
  assertKnownQueryAttributes(query);

  const resource = parseResourcePart(pathPart);
  return {
    ...parseResourceName(resource),
    endpoint: parseEndpoint(query),
    importSettings: parseImportSettings(query),
  };
}

/**
 * Formats a reference that the signer accepts, keeping only the connection attributes of
 * `parsed`, so that an import can hand back a reference to sign with.
 *
 * @example
 * formatGcpKmsReference(versionName, parsed.endpoint); // 'gcpkms:projects/.../cryptoKeyVersions/4'
 */
export function formatGcpKmsReference(
  versionName: string,
  endpoint: GcpKmsEndpoint | undefined,
): string {
  if (!endpoint) return `gcpkms:${versionName}`;
  const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
  const plaintext = endpoint.plaintext ? '&plaintext=true' : '';
  return `gcpkms:${versionName}?endpoint=${host}:${endpoint.port}${plaintext}`;
}

/**
 * Returns true when `name` is exactly `<cryptoKeyName>/cryptoKeyVersions/<number>`, with the
 * version number in the form Cloud KMS writes it: no sign, no leading zero, at most 19 digits.
 *
 * @example
 * isVersionNameOf(`${cryptoKeyName}/cryptoKeyVersions/3`, cryptoKeyName); // true
 */
export function isVersionNameOf(name: unknown, cryptoKeyName: string): name is string {
  const prefix = `${cryptoKeyName}/cryptoKeyVersions/`;
  if (typeof name !== 'string' || !name.startsWith(prefix)) return false;
  return versionPattern.test(name.slice(prefix.length));
}

/** Returns true for names and addresses that stay on this machine: localhost, 127/8 and ::1. */
export function isLoopbackHost(host: string): boolean {
  if (loopbackNames.has(host.toLowerCase())) return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

function parseResourcePart(pathPart: string): string {
  if (pathPart.startsWith('//')) return renameSigstoreVersions(pathPart.slice(2));
  if (!pathPart.includes('=')) return pathPart;

  const attributes = parseReferenceAttributes(pathPart, label).path;
  for (const name of attributes.keys()) {
    if (name !== 'resource') {
      throw invalid(
        `the attribute ${quote(name)} is not supported; only resource= is. For other credentials, ` +
          'pass your own KeyManagementServiceClient as the client option',
      );
    }
  }
  const resource = attributes.get('resource');
  if (resource === undefined) throw invalid('the attribute form needs resource=projects/...');
  return resource;
}

/**
 * Sigstore writes the version collection as `versions`. Only the ninth segment is renamed, so a
 * key ring or key that happens to be called "versions" keeps its name.
 */
function renameSigstoreVersions(resource: string): string {
  const segments = resource.split('/');
  if (segments.length === 10 && segments[8] === 'versions') segments[8] = 'cryptoKeyVersions';
  return segments.join('/');
}

function parseResourceName(resource: string): Omit<GcpKmsReference, 'endpoint' | 'importSettings'> {
  const segments = resource.split('/');
  const collections = ['projects', 'locations', 'keyRings', 'cryptoKeys', 'cryptoKeyVersions'];
  if (segments.length !== 8 && segments.length !== 10) {
    throw invalid(`${quote(resource)} is not a CryptoKey or CryptoKeyVersion resource name`);
  }
  segments.forEach((segment, index) => {
    if (index % 2 === 0 && segment !== collections[index / 2]) {
      throw invalid(
        `expected "${collections[index / 2]}" at segment ${index + 1}, found ${quote(segment)}`,
      );
    }
  });

  const [, project, , location, , keyRing, , cryptoKey, , version] = segments as string[];
  assertSegment(project!, projectPattern, 'project');
  assertSegment(location!, locationPattern, 'location');
  assertSegment(keyRing!, idPattern, 'key ring ID');
  assertSegment(cryptoKey!, idPattern, 'CryptoKey ID');
  if (version !== undefined) assertSegment(version, versionPattern, 'version number');

  const keyRingName = segments.slice(0, 6).join('/');
  const cryptoKeyName = segments.slice(0, 8).join('/');
  return {
    keyRingName,
    cryptoKeyName,
    cryptoKeyId: cryptoKey!,
    versionName: version === undefined ? undefined : resource,
  };
}

function assertSegment(value: string, pattern: RegExp, what: string): void {
  if (!pattern.test(value))
    throw invalid(
      `the ${what} ${quote(value)} has characters or a length that Cloud KMS does not allow`,
    );
}

function assertKnownQueryAttributes(query: Map<string, string>): void {
  for (const name of query.keys()) {
    if (!queryAttributes.has(name)) {
      throw invalid(
        `the query attribute ${quote(name)} is not supported; use ${[...queryAttributes].join(', ')}`,
      );
    }
  }
}

function parseEndpoint(query: Map<string, string>): GcpKmsEndpoint | undefined {
  const text = query.get('endpoint');
  const plaintext = parseBoolean(query.get('plaintext'), 'plaintext');
  if (text === undefined) {
    if (plaintext) throw invalid('plaintext=true needs an endpoint=HOST:PORT attribute');
    return undefined;
  }

  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65_535)
    throw invalid(`endpoint ${quote(text)} is not HOST:PORT`);
  const host = (match[1] ?? match[2])!;
  assertEndpointAllowed(host, plaintext);
  return { host, port, plaintext };
}

/**
 * Admits plaintext only on loopback, where no credentials are sent, and TLS only to Google's own
 * names, so that a reference can never send the caller's Google credentials to another host.
 */
function assertEndpointAllowed(host: string, plaintext: boolean): void {
  if (plaintext && isLoopbackHost(host)) return;
  if (!plaintext && /^[a-z0-9.-]+\.googleapis\.com$/i.test(host)) return;

  throw new KmsJwtError(
    'ERR_GCP_KMS_ENDPOINT_REJECTED',
    `Rejected the gcpkms endpoint: ${describeEndpointProblem(host, plaintext)}. For any other ` +
      'endpoint, pass your own KeyManagementServiceClient as the client option.',
    { details: { host, plaintext } },
  );
}

function describeEndpointProblem(host: string, plaintext: boolean): string {
  if (plaintext) {
    return (
      'plaintext=true is allowed only for loopback hosts (127.0.0.1, ::1, localhost), ' +
      `not ${quote(host)}`
    );
  }
  const problem =
    `endpoint ${quote(host)} is not a *.googleapis.com host, and TLS endpoints elsewhere ` +
    'would receive Google credentials';
  // A loopback endpoint is most likely a local emulator, and emulators usually serve plaintext
  // gRPC, so the message names the attribute that such a reference lacks.
  return isLoopbackHost(host) ? `${problem}. For a local emulator, add plaintext=true` : problem;
}

function parseImportSettings(query: Map<string, string>): GcpKmsImportSettings {
  const level = query.get('protection-level')?.toUpperCase();
  if (level !== undefined && level !== 'HSM' && level !== 'SOFTWARE') {
    throw invalid(`protection-level must be HSM or SOFTWARE, not ${quote(level)}`);
  }
  const importJobId = query.get('import-job');
  if (importJobId !== undefined) assertSegment(importJobId, idPattern, 'import job ID');
  return {
    protectionLevel: level,
    importMethod: query.get('import-method')?.toUpperCase(),
    importJobId,
  };
}

function parseBoolean(text: string | undefined, name: string): boolean {
  if (text === undefined || text === 'false') return false;
  if (text === 'true') return true;
  throw invalid(`${name} must be true or false, not ${quote(text)}`);
}

/**
 * Quotes a value taken from a reference for an error message: JSON escapes keep control
 * characters from starting forged log lines, and a long value is cut to its first 100 characters.
 */
function quote(value: string): string {
  const shown = value.length > 100 ? `${value.slice(0, 100)}...` : value;
  return JSON.stringify(shown);
}

function invalid(problem: string): KmsJwtError {
  return new KmsJwtError(
    'ERR_KEY_REFERENCE_INVALID',
    `Invalid ${label} key reference: ${problem}. ${expectedForms}.`,
    { details: { adapter: 'gcp-kms', problem } },
  );
}
