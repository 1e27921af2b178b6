/**
 * The AWS KMS adapter against small HTTP servers on 127.0.0.1 that break the AWS JSON 1.1
 * protocol in ways the emulator does not: dropped connections, bodies that are not JSON, and
 * bodies that never end. Each case must end in the right coded error, never in a key or token.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createAwsKmsSigner } from '../../adapters/aws-kms/index.js';
import { isKmsJwtError, type KmsJwtError } from '../../src/errors.js';
import { fakeCredentials, isolateAwsEnvironment } from './support.js';

type Responder = (request: IncomingMessage, response: ServerResponse) => void;

const keyArn = 'arn:aws:kms:us-east-1:111122223333:key/11111111-2222-3333-4444-555555555555';
let server: Server | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

/** Starts a server that reads each request body, then passes the request to `respond`. */
async function serve(respond: Responder): Promise<string> {
  isolateAwsEnvironment();
  server = createServer((request, response) => {
    request.resume();
    request.on('end', () => respond(request, response));
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return `http://127.0.0.1:${port}`;
}

/** Runs GetPublicKey against `respond` and returns the coded error it must raise. */
async function publicKeyFailure(respond: Responder, timeoutMs = 5_000): Promise<KmsJwtError> {
  const endpoint = await serve(respond);
  const signer = await createAwsKmsSigner(`awskms:${keyArn}`, {
    endpoint,
    region: 'us-east-1',
    credentials: fakeCredentials,
    retryBaseDelayMs: 1,
    timeoutMs,
  });
  try {
    await signer.getPublicKey();
  } catch (error) {
    if (isKmsJwtError(error)) return error;
    throw error;
  } finally {
    await signer.close();
  }
  throw new Error('GetPublicKey succeeded against a broken endpoint.');
}

function sendText(response: ServerResponse, status: number, text: string, type: string): void {
  response.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

const awsJson = 'application/x-amz-json-1.1';

describe('AWS KMS against a broken endpoint', () => {
  it('connection reset raises UNAVAILABLE', async () => {
    const error = await publicKeyFailure((request) => request.socket.destroy());
    expect(error.code).toBe('ERR_AWS_KMS_UNAVAILABLE');
    expect(error.message).toContain('ECONNRESET');
    expect(error.message).not.toContain('timed out');
  });

  const unreadable: [string, Responder][] = [
    ['truncated JSON', (_request, response) => sendText(response, 200, '{"KeyId":', awsJson)],
    ['HTML page', (_request, response) => sendText(response, 200, '<html></html>', 'text/html')],
    ['text error page', (_request, response) => sendText(response, 403, 'denied', 'text/plain')],
    [
      'PublicKey not base64',
      (_request, response) =>
        sendText(response, 200, JSON.stringify({ KeyId: keyArn, PublicKey: '*!*' }), awsJson),
    ],
  ];

  for (const [name, respond] of unreadable) {
    it(`${name} raises RESPONSE_INVALID`, async () => {
      const error = await publicKeyFailure(respond);
      expect(error.code).toBe('ERR_AWS_KMS_RESPONSE_INVALID');
      expect(error.message).toContain('Check that the endpoint is AWS KMS');
      expect(error.message).not.toContain('rejected');
    });
  }

  it('HTML 502 raises UNAVAILABLE', async () => {
    const error = await publicKeyFailure((_request, response) =>
      sendText(response, 502, '<html>Bad Gateway</html>', 'text/html'),
    );
    expect(error.code).toBe('ERR_AWS_KMS_UNAVAILABLE');
    expect(error.details.httpStatusCode).toBe(502);
  });

  it('body that never ends raises TIMEOUT', async () => {
    const error = await publicKeyFailure((_request, response) => {
      response.writeHead(200, { 'content-type': awsJson });
      const timer = setInterval(() => response.write(' '), 20);
      response.on('close', () => clearInterval(timer));
    }, 500);
    expect(error.code).toBe('ERR_AWS_KMS_TIMEOUT');
    expect(error.message).toContain('500 ms');
  });

  it('huge body is cut off with RESPONSE_INVALID', async () => {
    const chunk = Buffer.alloc(1 << 20, 0x20);
    const total = 256;
    let sent = 0;
    const error = await publicKeyFailure((_request, response) => {
      response.writeHead(200, { 'content-type': awsJson });
      const writeMore = () => {
        while (sent < total && !response.destroyed) {
          sent += 1;
          if (!response.write(chunk)) return void response.once('drain', writeMore);
        }
        if (!response.destroyed) response.end('{}');
      };
      writeMore();
    }, 30_000);
    expect(error.code).toBe('ERR_AWS_KMS_RESPONSE_INVALID');
    expect(error.message).toContain('larger than');
    // The client stops reading at the limit, so the server never gets to send most of the body.
    expect(sent).toBeLessThan(total / 4);
  });
});
