// KMS_JWT_DEBUG=1 prints the cause chain, where a server's text arrives. Control and
// bidirectional characters in it must reach the terminal escaped, and a line break in a message
// must not start a line that looks like the CLI's own output.
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatDebugTrace, formatErrorLine } from '../../src/cli/errors.js';
import { KmsJwtError } from '../../src/errors.js';
import { fakeCredentials } from '../aws-kms/support.js';
import { buildIfStale, runCli } from './support.js';

const hostile = 'denied\u001b[2J\u001b]0;title\u0007\r\nkms-jwt: error: forged \u202eevil\u2066';
const keyArn = 'arn:aws:kms:us-east-1:111122223333:key/11111111-2222-3333-4444-555555555555';

/** Characters a terminal acts on or reorders: C0 and C1 controls, DEL and bidi controls. */
const unsafeCharacter =
  // eslint-disable-next-line no-control-regex -- the pattern looks for control characters.
  /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

function hostileError(): KmsJwtError {
  const cause = Object.assign(new Error(hostile), { name: 'AccessDeniedException' });
  return new KmsJwtError('ERR_AWS_KMS_ACCESS_DENIED', 'AWS KMS GetPublicKey failed.', { cause });
}

describe('formatDebugTrace', () => {
  it('escapes control characters in a cause', () => {
    const trace = formatDebugTrace(hostileError());
    expect(trace).not.toMatch(unsafeCharacter);
    expect(trace).toContain('denied\\u001b[2J\\u001b]0;title\\u0007\\u000d\\u000akms-jwt');
    expect(trace).toContain('forged \\u202eevil\\u2066');
  });

  it('keeps a message line break inside its line', () => {
    const lines = formatDebugTrace(hostileError()).split('\n');
    expect(lines.filter((line) => line.startsWith('kms-jwt:'))).toEqual([]);
    expect(lines.filter((line) => line.startsWith('caused by: '))).toHaveLength(1);
  });

  it('keeps the stack frames', () => {
    const lines = formatDebugTrace(hostileError()).split('\n');
    expect(lines[0]).toBe('KmsJwtError: AWS KMS GetPublicKey failed.');
    expect(lines[1]).toMatch(/^\s+at /);
    const causeLine = lines.findIndex((line) => line.startsWith('caused by: '));
    expect(lines[causeLine]).toMatch(/^caused by: AccessDeniedException: denied\\u001b/);
    expect(lines[causeLine + 1]).toMatch(/^\s+at /);
  });

  it('escapes a cause that is not an Error', () => {
    const error = new KmsJwtError('ERR_X', 'outer', { cause: `text\r\n\u001b[31m` });
    const trace = formatDebugTrace(error);
    expect(trace).not.toMatch(unsafeCharacter);
    expect(trace).toContain('caused by: text\\u000d\\u000a\\u001b[31m\n');
  });

  it('survives a cause String() cannot convert', () => {
    const error = new KmsJwtError('ERR_X', 'outer', { cause: Object.create(null) });
    expect(formatDebugTrace(error)).toContain('caused by: a value that cannot be converted');
  });

  it('still redacts a token in a cause', () => {
    const token = `eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJERUYxMjNHSElKIn0.${'A'.repeat(86)}`;
    const error = new KmsJwtError('ERR_X', 'outer', { cause: new Error(`bad ${token}`) });
    const trace = formatDebugTrace(error);
    expect(trace).not.toContain(token);
    expect(trace).toContain('[JWS redacted]');
  });
});

describe('formatErrorLine', () => {
  it('escapes control characters in a message', () => {
    const line = formatErrorLine(new Error(hostile));
    expect(line).not.toMatch(unsafeCharacter);
    expect(line).not.toContain('\n');
    expect(line).toContain('\\u001b[2J');
    expect(line).toContain('\\u202eevil');
  });
});

describe('KMS_JWT_DEBUG=1 against a hostile server', () => {
  let server: Server;
  let port: number;

  beforeAll(async () => {
    buildIfStale();
    const body = JSON.stringify({ __type: 'AccessDeniedException', message: hostile });
    server = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        response.writeHead(400, {
          'content-type': 'application/x-amz-json-1.1',
          'x-amzn-errortype': 'AccessDeniedException',
        });
        response.end(body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('prints the cause chain escaped', async () => {
    const run = await runCli(['public-key', '--key', `awskms://127.0.0.1:${port}/${keyArn}`], {
      env: {
        KMS_JWT_DEBUG: '1',
        AWS_ACCESS_KEY_ID: fakeCredentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: fakeCredentials.secretAccessKey,
        AWS_REGION: 'us-east-1',
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        AWS_CONFIG_FILE: '/nonexistent/aws-config',
        AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
      },
    });

    expect(run.code).toBe(3);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('caused by: AccessDeniedException: denied\\u001b[2J');
    expect(run.stderr).not.toMatch(unsafeCharacter);
    const errorLines = run.stderr.split('\n').filter((line) => line.startsWith('kms-jwt: error:'));
    expect(errorLines).toHaveLength(1);
    expect(errorLines[0]).toMatch(/^kms-jwt: error: \[ERR_AWS_KMS_ACCESS_DENIED\] /);
  });
});
