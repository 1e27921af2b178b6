import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAwsKmsReference, regionFromArn } from '../../adapters/aws-kms/index.js';
import { awsPartitions, isKeyArn } from '../../adapters/aws-kms/reference.js';
import { parseKeyReference } from '../../src/key-uri.js';

const keyId = '1234abcd-12ab-34cd-56ef-1234567890ab';
const keyArn = `arn:aws:kms:eu-west-1:111122223333:key/${keyId}`;
const aliasArn = 'arn:aws:kms:eu-west-1:111122223333:alias/apple-siwa';

function parse(reference: string) {
  return parseAwsKmsReference(parseKeyReference(reference));
}

describe('awskms reference parser', () => {
  const accepted = [
    {
      reference: `awskms:${keyId}`,
      expected: { keyId, kind: 'key-id', region: undefined, endpoint: undefined },
    },
    {
      reference: 'awskms:mrk-1234abcd12ab34cd56ef1234567890ab',
      expected: { keyId: 'mrk-1234abcd12ab34cd56ef1234567890ab', kind: 'key-id' },
    },
    {
      reference: `awskms:${keyArn}`,
      expected: { keyId: keyArn, kind: 'key-arn', region: 'eu-west-1', endpoint: undefined },
    },
    {
      reference: 'awskms:alias/apple-siwa',
      expected: { keyId: 'alias/apple-siwa', kind: 'alias-name', region: undefined },
    },
    {
      reference: `awskms:${aliasArn}`,
      expected: { keyId: aliasArn, kind: 'alias-arn', region: 'eu-west-1' },
    },
    {
      reference: `awskms:///${keyArn}`,
      expected: { keyId: keyArn, kind: 'key-arn', region: 'eu-west-1', endpoint: undefined },
    },
    {
      reference: 'awskms:///alias/apple-siwa',
      expected: { keyId: 'alias/apple-siwa', kind: 'alias-name', endpoint: undefined },
    },
    {
      reference: `awskms://kms.eu-west-1.amazonaws.com/${keyArn}`,
      expected: { keyId: keyArn, endpoint: 'https://kms.eu-west-1.amazonaws.com' },
    },
    {
      reference: `awskms://127.0.0.1:4566/${keyArn}`,
      expected: { keyId: keyArn, endpoint: 'http://127.0.0.1:4566', region: 'eu-west-1' },
    },
    {
      reference: `awskms://[::1]:4566/${keyId}`,
      expected: { keyId, endpoint: 'http://[::1]:4566', kind: 'key-id' },
    },
    {
      reference: `awskms:key-id=${keyId};region=us-east-2`,
      expected: { keyId, kind: 'key-id', region: 'us-east-2', profile: undefined },
    },
    {
      reference: `awskms:key-id=alias/apple-siwa;region=us-east-2;profile=signing`,
      expected: { keyId: 'alias/apple-siwa', region: 'us-east-2', profile: 'signing' },
    },
    {
      reference: `awskms:key-id=${encodeURIComponent(keyArn)}`,
      expected: { keyId: keyArn, kind: 'key-arn', region: 'eu-west-1' },
    },
    {
      reference: `awskms:key-id=${keyId}?endpoint=${encodeURIComponent('http://localhost:4566')}`,
      expected: { keyId, endpoint: 'http://localhost:4566' },
    },
    {
      reference: `AWSKMS:${keyId}`,
      expected: { keyId, kind: 'key-id' },
    },
  ];

  for (const { reference, expected } of accepted) {
    it(`accepts ${reference}`, () => {
      expect(parse(reference)).toMatchObject(expected);
    });
  }

  const rejected = [
    ['awskms:not-a-key', 'neither a key ID'],
    ['awskms:arn:aws:s3:::bucket', 'not an AWS KMS key or alias ARN'],
    ['awskms:arn:aws:kms:eu-west-1:111122223333:key/not-a-uuid', 'does not end in a key ID'],
    ['awskms:arn:aws:kms:eu-west-1:111122223333:alias/', 'not an AWS KMS key or alias ARN'],
    ['awskms:alias/', 'neither a key ID'],
    ['awskms://127.0.0.1:4566', 'needs a "/"'],
    ['awskms://user@host/alias/x', 'not HOST or HOST:PORT'],
    ['awskms://[::1]evil/alias/x', 'not HOST or HOST:PORT'],
    ['awskms://[::1/alias/x', 'not HOST or HOST:PORT'],
    ['awskms://127.0.0.1:80:90/alias/x', 'not HOST or HOST:PORT'],
    ['awskms://kms.example.com:99999/alias/x', 'not HOST or HOST:PORT'],
    ['awskms:region=us-east-1', 'key-id attribute is missing'],
    ['awskms:alias/apple-siwa?endpoint=http://127.0.0.1:4566', 'write the key as key-id=KEY'],
    ['awskms:alias/apple-siwa;region=eu-west-1', 'write the key as key-id=KEY'],
    [`awskms:${keyArn}?endpoint=https://kms.example.com`, 'write the key as key-id=KEY'],
    [`awskms:key-id=${keyId};colour=blue`, 'attribute "colour"'],
    [`awskms:key-id=${encodeURIComponent(keyArn)};region=us-east-1`, 'disagrees'],
    [`awskms:key-id=${keyId}?endpoint=http%3A%2F%2Fkms.example.com`, 'must use https'],
    [`awskms:key-id=${keyId}?endpoint=not%20a%20url`, 'not a URL'],
    [`awskms:key-id=alias/shown?key-id=alias/used`, 'attribute "key-id" is given twice'],
    [
      `awskms:key-id=${keyId};region=eu-west-1?region=us-east-1`,
      'attribute "region" is given twice',
    ],
  ];

  for (const [reference, problem] of rejected) {
    it(`rejects ${reference}`, () => {
      let caught: unknown;
      try {
        parse(reference!);
      } catch (error) {
        caught = error;
      }
      expect(caught).toMatchObject({ code: 'ERR_KEY_REFERENCE_INVALID' });
      expect((caught as Error).message).toContain(problem);
      expect((caught as Error).message).toContain('awskms:alias/NAME');
    });
  }

  const badRegions = ['kms.attacker.example#', 'us-east-1.attacker.example', '', 'eu west 1'];

  for (const region of badRegions) {
    it(`rejects region ${JSON.stringify(region)}`, () => {
      // The SDK builds https://kms.REGION.amazonaws.com from the region, so a host name or a
      // "#" in it would send the signed request elsewhere.
      const reference = `awskms:key-id=${keyId};region=${encodeURIComponent(region)}`;
      let caught: unknown;
      try {
        parse(reference);
      } catch (error) {
        caught = error;
      }
      expect(caught).toMatchObject({ code: 'ERR_KEY_REFERENCE_INVALID' });
      expect((caught as Error).message).toContain('region attribute is not a region name');
      expect((caught as Error).message).not.toContain('attacker');
    });
  }

  it('rejects credentials in the endpoint', () => {
    const endpoint = 'https://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI@kms.example.com';
    const reference = `awskms:key-id=${keyId}?endpoint=${encodeURIComponent(endpoint)}`;
    let caught: unknown;
    try {
      parse(reference);
    } catch (error) {
      caught = error;
    }
    expect(caught).toMatchObject({ code: 'ERR_KEY_REFERENCE_INVALID' });
    expect((caught as Error).message).toContain('user name or password');
    expect((caught as Error).message).not.toContain('AKIAIOSFODNN7EXAMPLE');
    expect((caught as Error).message).not.toContain('wJalrXUtnFEMI');
  });

  it('reads the region of key and alias ARNs', () => {
    expect(regionFromArn(keyArn)).toBe('eu-west-1');
    expect(regionFromArn('arn:aws-cn:kms:cn-north-1:111122223333:alias/x')).toBe('cn-north-1');
    expect(regionFromArn('alias/apple-siwa')).toBeUndefined();
    expect(regionFromArn(keyId)).toBeUndefined();
  });
});

function rejectionOf(reference: string): Error & { code?: string } {
  try {
    parse(reference);
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error(`${reference} was accepted`);
}

describe('awskms ARN partitions', () => {
  const regions: Record<string, string> = {
    aws: 'eu-west-1',
    'aws-cn': 'cn-north-1',
    'aws-us-gov': 'us-gov-west-1',
    'aws-iso': 'us-iso-east-1',
    'aws-iso-b': 'us-isob-east-1',
    'aws-iso-e': 'eu-isoe-west-1',
    'aws-iso-f': 'us-isof-south-1',
    'aws-eusc': 'eusc-de-east-1',
  };

  for (const [partition, region] of Object.entries(regions)) {
    it(`accepts partition ${partition}`, () => {
      const arn = `arn:${partition}:kms:${region}:111122223333:key/${keyId}`;
      expect(parse(`awskms:${arn}`)).toMatchObject({ keyId: arn, kind: 'key-arn', region });
      expect(isKeyArn(arn)).toBe(true);
    });
  }

  const unknown = ['awsx', 'aws-', 'aws-iso-x', 'aws-cn-x', 'AWS', 'aws-iso-b-', 'awscn'];

  for (const partition of unknown) {
    it(`rejects partition ${partition}`, () => {
      const arn = `arn:${partition}:kms:eu-west-1:111122223333:key/${keyId}`;
      const error = rejectionOf(`awskms:${arn}`);
      expect(error.code).toBe('ERR_KEY_REFERENCE_INVALID');
      expect(error.message).toContain('not an AWS KMS key or alias ARN');
      expect(isKeyArn(arn)).toBe(false);
      expect(regionFromArn(arn)).toBeUndefined();
    });
  }

  it('lists the partitions of the installed SDK', () => {
    // @aws-sdk/core carries the partitions table that the SDK resolves endpoints from.
    const requireFromTest = createRequire(import.meta.url);
    const requireFromSdk = createRequire(requireFromTest.resolve('@aws-sdk/client-kms'));
    const core = dirname(requireFromSdk.resolve('@aws-sdk/core/package.json'));
    const table = readFileSync(
      join(core, 'dist-es/submodules/client/util-endpoints/lib/aws/partitions.js'),
      'utf8',
    );
    const sdkPartitions = [...table.matchAll(/"id": "([a-z-]+)"/g)].map((match) => match[1]);
    expect(sdkPartitions.length).toBeGreaterThan(0);
    expect([...awsPartitions].sort()).toEqual(sdkPartitions.sort());
    expect(Object.keys(regions).sort()).toEqual(sdkPartitions.sort());
  });
});

describe('awskms endpoint attribute', () => {
  const accepted = [
    ['https://kms.example.com', 'https://kms.example.com'],
    ['https://kms.example.com/', 'https://kms.example.com'],
    ['https://kms.example.com:8443', 'https://kms.example.com:8443'],
    ['http://127.0.0.1:4566', 'http://127.0.0.1:4566'],
    ['http://[::1]:4566', 'http://[::1]:4566'],
  ];

  for (const [endpoint, expected] of accepted) {
    it(`accepts ${endpoint}`, () => {
      const reference = `awskms:key-id=${keyId}?endpoint=${encodeURIComponent(endpoint!)}`;
      expect(parse(reference).endpoint).toBe(expected);
    });
  }

  const rejected = [
    'https://kms.example.com/path',
    'https://kms.example.com/?',
    'https://kms.example.com?',
    'https://kms.example.com?Action=Sign',
    'https://kms.example.com#',
    'https://kms.example.com#fragment',
    'https://kms.example.com:8443/prefix/',
    'http://127.0.0.1:4566/x',
    'https://kms.example.com\\path',
  ];

  for (const endpoint of rejected) {
    it(`rejects ${JSON.stringify(endpoint)}`, () => {
      const error = rejectionOf(`awskms:key-id=${keyId}?endpoint=${encodeURIComponent(endpoint)}`);
      expect(error.code).toBe('ERR_KEY_REFERENCE_INVALID');
      expect(error.message).toContain('scheme://host[:port]');
      expect(error.message).toContain('path, query or fragment');
    });
  }
});
