/**
 * Helpers for the CLI tests: build dist/ when stale, spawn the built `kms-jwt`, make throwaway
 * P-256 keys in a private temporary folder, and verify tokens with jose and jsonwebtoken.
 */
import { execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { importSPKI, jwtVerify } from 'jose';
import jsonwebtoken from 'jsonwebtoken';
import { expect } from 'vitest';

export const cliPath = resolve('dist/cli.cjs');

/** Builds dist/ when any source is newer, under the build lock other test runs share. */
export function buildIfStale(): void {
  const script = 'scripts/build-if-stale.mjs';
  try {
    execFileSync('flock', ['/tmp/build.lock', process.execPath, script], { stdio: 'inherit' });
  } catch (error) {
    if ((error as { code?: string }).code !== 'ENOENT') throw error;
    execFileSync(process.execPath, [script], { stdio: 'inherit' }); // No flock on this machine.
  }
}

/** What one CLI run printed and returned. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Options for {@link runCli}. */
export interface RunOptions {
  /** Text written to the CLI's stdin, which is closed afterwards. */
  input?: string;
  /** Variables added to a minimal environment. */
  env?: Record<string, string>;
}

/**
 * Runs the built CLI with `args`. The environment holds only PATH, HOME and `options.env`, so
 * that the developer's variables (KMS_JWT_DEBUG, AWS settings) cannot change the result.
 */
export function runCli(args: string[], options: RunOptions = {}): Promise<CliRun> {
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...options.env };
  const child = spawn(process.execPath, [cliPath, ...args], { env, stdio: 'pipe' });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  // A CLI that rejects its arguments exits before reading stdin, and writing to the closed pipe
  // then fails with EPIPE. That is not a test failure: the exit code and output are checked.
  child.stdin.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
  child.stdin.end(options.input ?? '');
  return new Promise((done, fail) => {
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

/** A throwaway key in its own temporary folder. */
export interface TestKey {
  folder: string;
  /** Path of `AuthKey_<keyId>.p8`, mode 0600. */
  path: string;
  keyId: string;
  pem: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicPem: string;
  remove(): void;
}

/**
 * Creates a P-256 key as an Apple-style `AuthKey_<keyId>.p8` with mode 0600 in a new folder.
 */
export function createTestKey(keyId = 'ABC123DEFG'): TestKey {
  const folder = mkdtempSync(join(tmpdir(), 'kms-jwt-cli-'));
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const path = join(folder, `AuthKey_${keyId}.p8`);
  writeFileSync(path, pem, { mode: 0o600 });
  chmodSync(path, 0o600);
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const remove = () => rmSync(folder, { recursive: true, force: true });
  return { folder, path, keyId, pem, privateKey, publicKey, publicPem, remove };
}

/** Mints a client secret with `key` through the CLI and returns the token, failing on any error. */
export async function mintTestToken(key: TestKey): Promise<string> {
  const run = await runCli([
    'client-secret',
    ...['--team-id', 'DEF123GHIJ', '--client-id', 'com.example.web', '--key', key.path],
  ]);
  if (run.code !== 0) throw new Error(`client-secret exited with ${run.code}: ${run.stderr}`);
  return run.stdout.trim();
}

/**
 * Verifies an ES256 token with both jose and jsonwebtoken, and returns the claims jose decoded.
 */
export async function verifyIndependently(
  token: string,
  publicPem: string,
): Promise<Record<string, unknown>> {
  const joseKey = await importSPKI(publicPem, 'ES256');
  const { payload, protectedHeader } = await jwtVerify(token, joseKey, { algorithms: ['ES256'] });
  expect(protectedHeader.alg).toBe('ES256');

  const decoded = jsonwebtoken.verify(token, publicPem, { algorithms: ['ES256'] });
  expect(decoded).toEqual(payload);
  return payload as Record<string, unknown>;
}

/** Decodes one base64url JSON part of a compact JWS. */
export function decodePart(token: string, index: 0 | 1): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[index]!, 'base64url').toString('utf8'));
}

/** Asserts that stderr is exactly one `kms-jwt: error: [CODE] ...` line with no stack trace. */
export function expectOneErrorLine(run: CliRun, code: string): void {
  const lines = run.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^kms-jwt: error: \\[${code}\\] \\S`));
  expect(run.stderr).not.toMatch(/\n\s+at /);
  expect(run.stdout).toBe('');
}

/** Current time in whole seconds. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
