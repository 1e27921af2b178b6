import { describe, expect, it } from 'vitest';
import { formatGcpKmsReference, parseGcpKmsReference } from '../../adapters/gcp-kms/index.js';
import { parseKeyReference } from '../../src/key-uri.js';

const keyName = 'projects/acme-prod/locations/europe-west1/keyRings/apple/cryptoKeys/siwa';
const versionName = `${keyName}/cryptoKeyVersions/3`;

function parse(reference: string) {
  return parseGcpKmsReference(parseKeyReference(reference));
}

function codeOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

describe('Cloud KMS references', () => {
  const forms = [
    `gcpkms:${versionName}`,
    `gcpkms://${versionName}`,
    `gcpkms://${keyName}/versions/3`,
    `cloudkms:${versionName}`,
    `cloudkms:resource=${versionName}`,
    `cloudkms:resource=${encodeURIComponent(versionName)}`,
  ];
  for (const form of forms) {
    it(`parses ${form.slice(0, 20)}...`, () => {
      const parsed = parse(form);
      expect(parsed.versionName).toBe(versionName);
      expect(parsed.cryptoKeyName).toBe(keyName);
      expect(parsed.keyRingName).toBe('projects/acme-prod/locations/europe-west1/keyRings/apple');
      expect(parsed.cryptoKeyId).toBe('siwa');
      expect(parsed.endpoint).toBeUndefined();
    });
  }

  it('keeps a key ring named versions', () => {
    const name = 'projects/p1/locations/global/keyRings/versions/cryptoKeys/versions';
    expect(parse(`gcpkms://${name}/versions/2`).versionName).toBe(`${name}/cryptoKeyVersions/2`);
    expect(parse(`gcpkms://${name}`).cryptoKeyName).toBe(name);
  });

  it('parses a key without a version', () => {
    const parsed = parse(`gcpkms:${keyName}`);
    expect(parsed.versionName).toBeUndefined();
    expect(parsed.cryptoKeyName).toBe(keyName);
  });

  it('accepts domain-scoped and numeric projects', () => {
    for (const project of ['example.com:acme', '123456789012']) {
      const name = `projects/${project}/locations/us/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1`;
      expect(parse(`gcpkms:${name}`).versionName).toBe(name);
    }
  });

  it('parses loopback plaintext endpoints', () => {
    for (const host of ['127.0.0.1', 'localhost', '[::1]']) {
      const parsed = parse(`gcpkms:${versionName}?endpoint=${host}:8085&plaintext=true`);
      expect(parsed.endpoint).toEqual({
        host: host.replace(/^\[|\]$/g, ''),
        port: 8085,
        plaintext: true,
      });
    }
  });

  it('parses a googleapis.com TLS endpoint', () => {
    const parsed = parse(`gcpkms:${versionName}?endpoint=cloudkms.googleapis.com:443`);
    expect(parsed.endpoint).toEqual({
      host: 'cloudkms.googleapis.com',
      port: 443,
      plaintext: false,
    });
  });

  it('parses import attributes', () => {
    const parsed = parse(
      `gcpkms:${keyName}?protection-level=software&import-method=rsa_oaep_3072_sha256&import-job=j1`,
    );
    expect(parsed.importSettings).toEqual({
      protectionLevel: 'SOFTWARE',
      importMethod: 'RSA_OAEP_3072_SHA256',
      importJobId: 'j1',
    });
  });

  it('formats a reference that parses back', () => {
    const endpoint = { host: '::1', port: 9000, plaintext: true };
    const text = formatGcpKmsReference(versionName, endpoint);
    expect(text).toBe(`gcpkms:${versionName}?endpoint=[::1]:9000&plaintext=true`);
    expect(parse(text).endpoint).toEqual(endpoint);
    expect(formatGcpKmsReference(versionName, undefined)).toBe(`gcpkms:${versionName}`);
  });

  const invalid: [string, string][] = [
    ['too short', 'gcpkms:projects/p/locations/l'],
    ['wrong collection', `gcpkms:${keyName.replace('keyRings', 'keyrings')}`],
    ['version zero', `gcpkms:${keyName}/cryptoKeyVersions/0`],
    ['version word', `gcpkms:${keyName}/cryptoKeyVersions/latest`],
    ['bad key ID', 'gcpkms:projects/p/locations/l/keyRings/r/cryptoKeys/a.b'],
    ['long key ID', `gcpkms:projects/p/locations/l/keyRings/r/cryptoKeys/${'k'.repeat(64)}`],
    ['bad project', 'gcpkms:projects/P_Q/locations/l/keyRings/r/cryptoKeys/k'],
    ['unknown attribute', `gcpkms:${versionName}?region=us`],
    ['smallstep credentials', `cloudkms:resource=${versionName};credentials-file=/x.json`],
    ['attribute without resource', 'cloudkms:name=x'],
    ['plaintext without endpoint', `gcpkms:${versionName}?plaintext=true`],
    ['bad plaintext value', `gcpkms:${versionName}?endpoint=127.0.0.1:1&plaintext=yes`],
    ['endpoint without port', `gcpkms:${versionName}?endpoint=127.0.0.1`],
    ['port out of range', `gcpkms:${versionName}?endpoint=127.0.0.1:70000&plaintext=true`],
    ['bad protection level', `gcpkms:${keyName}?protection-level=EXTERNAL`],
    ['bad import job ID', `gcpkms:${keyName}?import-job=a/b`],
  ];
  for (const [name, reference] of invalid) {
    it(`rejects ${name}`, () => {
      expect(codeOf(() => parse(reference))).toBe('ERR_KEY_REFERENCE_INVALID');
    });
  }

  it('names the accepted forms', () => {
    try {
      parse('gcpkms:projects/p');
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).toContain('cryptoKeyVersions/N');
      expect((error as Error).message).toContain('cloudkms:resource=projects/');
    }
  });

  it('quotes values in messages safely', () => {
    const cases = [
      `gcpkms:projects/${'a'.repeat(100_000)}`,
      `gcpkms:${keyName.replace('siwa', 'x'.repeat(100_000))}`,
      `gcpkms:${versionName}?endpoint=${'b'.repeat(100_000)}`,
      `gcpkms:projects/p\nkms-jwt: forged log line`,
      `gcpkms:${versionName}?endpoint=127.0.0.1:1%0Aforged&plaintext=true`,
    ];
    for (const reference of cases) {
      let message = '';
      try {
        parse(reference);
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(/^Invalid gcpkms key reference/);
      expect(message.length).toBeLessThan(600);
      expect(message).not.toMatch(/[\r\n]/);
    }
  });

  const rejectedEndpoints: [string, string][] = [
    ['plaintext to another host', 'endpoint=10.1.2.3:8085&plaintext=true'],
    ['plaintext to a name', 'endpoint=kms.example.com:8085&plaintext=true'],
    ['TLS to another host', 'endpoint=kms.example.com:443'],
    ['TLS to a lookalike', 'endpoint=googleapis.com.example.net:443'],
  ];
  for (const [name, query] of rejectedEndpoints) {
    it(`rejects ${name}`, () => {
      expect(codeOf(() => parse(`gcpkms:${versionName}?${query}`))).toBe(
        'ERR_GCP_KMS_ENDPOINT_REJECTED',
      );
    });
  }

  it('suggests plaintext for a loopback TLS endpoint', () => {
    for (const host of ['127.0.0.1', 'localhost', '[::1]']) {
      let error: { code?: string; message?: string } = {};
      try {
        parse(`gcpkms:${versionName}?endpoint=${host}:8085`);
      } catch (caught) {
        error = caught as typeof error;
      }
      expect(error.code).toBe('ERR_GCP_KMS_ENDPOINT_REJECTED');
      expect(error.message).toContain('add plaintext=true');
    }
  });

  it('suggests no plaintext for a remote TLS endpoint', () => {
    let message = '';
    try {
      parse(`gcpkms:${versionName}?endpoint=kms.example.com:443`);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/^Rejected the gcpkms endpoint/);
    expect(message).not.toContain('plaintext=true');
  });
});
