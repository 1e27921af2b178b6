/**
 * Parses `awskms:` key references. Accepted forms:
 *
 * - `awskms:KEY` where KEY is a key ID, a key ARN, an alias name (`alias/NAME`) or an alias ARN,
 *   as the AWS KMS `KeyId` parameter accepts them;
 * - the sigstore forms `awskms:///KEY` and `awskms://ENDPOINT/KEY`;
 * - the smallstep form `awskms:key-id=KEY;region=REGION;profile=PROFILE`, with the RFC 7512
 *   attribute layout.
 *
 * The region comes from the ARN when the reference has one, because a bare key ID or alias name
 * carries no region and a client built for another region answers NotFoundException.
 */
import { KmsJwtError } from '../../src/errors.js';
import { shortenForMessage } from '../../src/message-text.js';
import { parseReferenceAttributes, type KeyReference } from '../../src/key-uri.js';

/** An `awskms:` reference after parsing. */
export interface AwsKmsReference {
  /** The value sent as `KeyId`: a key ID, key ARN, alias name or alias ARN. */
  keyId: string;
  /** The region from the ARN or the `region` attribute; undefined leaves it to the SDK. */
  region: string | undefined;
  /** An endpoint URL from the sigstore `awskms://ENDPOINT/KEY` form or an `endpoint` attribute. */
  endpoint: string | undefined;
  /** A shared-config profile from the smallstep `profile` attribute. */
  profile: string | undefined;
  /** What `keyId` is. */
  kind: 'key-id' | 'key-arn' | 'alias-name' | 'alias-arn';
}

const label = 'awskms';

/**
 * The AWS partitions, as in the partitions table of `@aws-sdk/core` 3.981.2, which
 * `@aws-sdk/client-kms` 3.1164.0 resolves endpoints from
 * (`dist-es/submodules/client/util-endpoints/lib/aws/partitions.js`). A test compares this list
 * with the installed SDK's table.
 */
export const awsPartitions: readonly string[] = [
  'aws',
  'aws-cn',
  'aws-us-gov',
  'aws-iso',
  'aws-iso-b',
  'aws-iso-e',
  'aws-iso-f',
  'aws-eusc',
];

// Key ARN and alias ARN layout from the AWS KMS "Key identifiers (KeyId)" page:
// arn:PARTITION:kms:REGION:ACCOUNT:key/KEY-ID and arn:PARTITION:kms:REGION:ACCOUNT:alias/NAME.
const arnPattern = new RegExp(
  `^arn:(${awsPartitions.join('|')}):kms:([a-z0-9-]+):(\\d{12}):(key|alias)\\/(.+)$`,
);
// A key ID is a UUID, or `mrk-` and 32 hex digits for a multi-Region key.
const keyIdPattern =
  /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$/i;
// Alias names are 1-256 characters of letters, digits, `/`, `_` and `-` after `alias/`.
const aliasNamePattern = /^alias\/[A-Za-z0-9/_-]{1,250}$/;
// The SDK puts the region into the endpoint host, https://kms.REGION.amazonaws.com, so it must
// be one DNS label: a "." or "#" in it would send the signed request to another host.
const regionPattern = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;
const loopbackHosts = new Set(['127.0.0.1', 'localhost', '[::1]']);

const expectedForms =
  'Use awskms:KEY-ID, awskms:arn:aws:kms:REGION:ACCOUNT:key/KEY-ID, awskms:alias/NAME, ' +
  'awskms:arn:aws:kms:REGION:ACCOUNT:alias/NAME, awskms:///KEY, awskms://HOST:PORT/KEY or ' +
  'awskms:key-id=KEY;region=REGION';

/**
 * Parses the part of an `awskms:` reference after the scheme.
 *
 * @example
 * parseAwsKmsReference(parseKeyReference('awskms:alias/apple-siwa'));
 * // { keyId: 'alias/apple-siwa', region: undefined, endpoint: undefined, kind: 'alias-name', ... }
 */
export function parseAwsKmsReference(reference: KeyReference): AwsKmsReference {
  const rest = reference.rest;
  if (rest.startsWith('//')) return parseSigstoreForm(rest.slice(2));
  if (rest.includes('=')) return parseAttributeForm(rest);
  return { ...parseKeyId(rest), endpoint: undefined, profile: undefined };
}

/** Returns the region of a key or alias ARN, or undefined for a bare key ID or alias name. */
export function regionFromArn(keyId: string): string | undefined {
  return arnPattern.exec(keyId)?.[2];
}

/**
 * Returns true when `text` is a key ARN, `arn:PARTITION:kms:REGION:ACCOUNT:key/KEY-ID`.
 *
 * @example
 * isKeyArn('arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab'); // true
 */
export function isKeyArn(text: string): boolean {
  const arn = arnPattern.exec(text);
  return arn !== null && arn[4] === 'key' && keyIdPattern.test(arn[5]!);
}

/**
 * Returns the `arn:PARTITION:kms:REGION:ACCOUNT:` start of a key or alias ARN, which a key ARN
 * shares with every alias that can point at it, or undefined for text that is no such ARN.
 */
export function arnScope(text: string): string | undefined {
  const arn = arnPattern.exec(text);
  return arn ? `arn:${arn[1]}:kms:${arn[2]}:${arn[3]}:` : undefined;
}

function parseKeyId(text: string): Pick<AwsKmsReference, 'keyId' | 'region' | 'kind'> {
  if (text === '') throw invalid('the key is empty');

  const arn = arnPattern.exec(text);
  if (arn) {
    const isAlias = arn[4] === 'alias';
    if (isAlias && !aliasNamePattern.test(`alias/${arn[5]}`))
      throw invalid('the alias ARN has an invalid alias name');
    if (!isAlias && !keyIdPattern.test(arn[5]!))
      throw invalid('the key ARN does not end in a key ID');
    return { keyId: text, region: arn[2], kind: isAlias ? 'alias-arn' : 'key-arn' };
  }

  if (text.startsWith('arn:')) throw invalid('the ARN is not an AWS KMS key or alias ARN');
  if (keyIdPattern.test(text)) return { keyId: text, region: undefined, kind: 'key-id' };
  if (aliasNamePattern.test(text)) return { keyId: text, region: undefined, kind: 'alias-name' };
  throw invalid('the key is neither a key ID, a key ARN, an alias name nor an alias ARN');
}

// sigstore: awskms://[ENDPOINT]/KEY. The endpoint is HOST[:PORT]; it is reached over HTTPS,
// except on loopback addresses, where local emulators serve plain HTTP.
function parseSigstoreForm(afterSlashes: string): AwsKmsReference {
  const slash = afterSlashes.indexOf('/');
  if (slash === -1) throw invalid('the awskms:// form needs a "/" before the key');

  const host = afterSlashes.slice(0, slash);
  const key = parseKeyId(afterSlashes.slice(slash + 1));
  const endpoint = host === '' ? undefined : endpointUrl(host);
  return { ...key, endpoint, profile: undefined };
}

function endpointUrl(host: string): string {
  if (!/^[A-Za-z0-9.\-[\]:]+$/.test(host)) throw invalid('the endpoint is not HOST or HOST:PORT');
  // The URL parser must read back exactly HOST[:PORT], so that a stray "]" or ":" or a port out
  // of range fails here instead of inside the SDK on the first call.
  const url = parseUrl(`https://${host}`);
  const sameHost = url !== undefined && url.host === host.toLowerCase().replace(/:443$/, '');
  if (!sameHost) throw invalid('the endpoint is not HOST or HOST:PORT');
  return `${loopbackHosts.has(url.hostname) ? 'http' : 'https'}://${host}`;
}

function parseUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

function parseAttributeForm(rest: string): AwsKmsReference {
  // A short-form key followed by attributes, as in `awskms:alias/NAME?endpoint=URL`, would
  // otherwise fail as "attribute 1 has no name=value form", which does not say what to change.
  const firstAttribute = rest.split(/[;?]/, 1)[0]!;
  if (firstAttribute !== '' && !firstAttribute.includes('=')) {
    throw invalid(
      'the region, profile and endpoint attributes need the key as an attribute too, so write ' +
        'the key as key-id=KEY, as in awskms:key-id=alias/NAME;region=REGION?endpoint=URL',
    );
  }

  const { path, query } = parseReferenceAttributes(rest, label);
  // A later copy would silently win, so a reference could show one key and sign with another.
  const twice = [...query.keys()].find((name) => path.has(name));
  if (twice !== undefined) {
    throw invalid(`attribute "${shortenForMessage(twice)}" is given twice, before and after "?"`);
  }
  const attributes = new Map([...path, ...query]);
  const known = new Set(['key-id', 'region', 'profile', 'endpoint']);
  const unknown = [...attributes.keys()].find((name) => !known.has(name));
  if (unknown !== undefined) {
    const shown = shortenForMessage(unknown);
    throw invalid(`attribute "${shown}" is not one of ${[...known].join(', ')}`);
  }

  const keyIdText = attributes.get('key-id');
  if (keyIdText === undefined) throw invalid('the key-id attribute is missing');
  const key = parseKeyId(keyIdText);
  const region = attributes.get('region');
  if (region !== undefined && !regionPattern.test(region)) {
    throw invalid('the region attribute is not a region name such as eu-west-1');
  }
  if (region !== undefined && key.region !== undefined && region !== key.region) {
    throw invalid(`region=${region} disagrees with the region ${key.region} in the ARN`);
  }

  const endpointText = attributes.get('endpoint');
  return {
    ...key,
    region: key.region ?? region,
    endpoint: endpointText === undefined ? undefined : parseEndpointAttribute(endpointText),
    profile: attributes.get('profile'),
  };
}

function parseEndpointAttribute(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid('the endpoint attribute is not a URL such as https://kms.example.com');
  }
  // A reference is shown in configuration, logs and the import result, and AWS takes no
  // credentials in the URL, so a user name or password there can only leak.
  if (url.username !== '' || url.password !== '') {
    throw invalid('the endpoint attribute has a user name or password, which AWS KMS never uses');
  }
  // The SDK (3.1164.0) posts every request to the endpoint's path, so a path would change where
  // the signed requests go, and a query or fragment means nothing for an endpoint. The check
  // reads the text, because the URL parser drops an empty "?" or "#" and reads "\" as "/".
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#\\]*\/?$/.test(text)) {
    throw invalid(
      'the endpoint attribute must be scheme://host[:port], without a path, query or fragment',
    );
  }
  if (url.protocol === 'https:') return url.origin;
  if (url.protocol === 'http:' && loopbackHosts.has(url.hostname)) return url.origin;
  throw invalid('the endpoint must use https, or http on a loopback address');
}

function invalid(problem: string): KmsJwtError {
  return new KmsJwtError(
    'ERR_KEY_REFERENCE_INVALID',
    `Invalid awskms key reference: ${problem}. ${expectedForms}.`,
    {
      details: { adapter: 'aws-kms' },
    },
  );
}
