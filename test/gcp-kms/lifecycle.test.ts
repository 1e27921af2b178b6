/**
 * The emulator and the clients of a signer must leave nothing behind: no listening socket, no
 * connection, no timer that keeps the process alive, and no unhandled rejection. An async hook
 * records every timer and socket created while a test runs and notes when each is destroyed.
 */
import { createHook } from 'node:async_hooks';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { createGcpKmsSigner } from '../../adapters/gcp-kms/index.js';
import { signJwt } from '../../src/jws.js';
import { GcpKmsEmulator } from '../emulators/gcp-kms/index.js';
import { clientSecretParts, emulatorClient, isolateGoogleEnvironment, keyRing } from './support.js';

const rejections: unknown[] = [];
const onRejection = (reason: unknown) => rejections.push(reason);

/** Resources created while a test runs and not yet destroyed, by async id. */
const live = new Map<number, { type: string; resource: { hasRef?: () => boolean } }>();
const tracked = new Set(['Timeout', 'Immediate', 'TCPWRAP', 'TCPSERVERWRAP', 'TCPCONNECTWRAP']);
const hook = createHook({
  init(asyncId, type, _trigger, resource) {
    if (tracked.has(type)) live.set(asyncId, { type, resource: resource as never });
  },
  destroy(asyncId) {
    live.delete(asyncId);
  },
});

beforeEach(() => {
  isolateGoogleEnvironment();
  rejections.length = 0;
  live.clear();
  process.on('unhandledRejection', onRejection);
  hook.enable();
});

afterEach(() => {
  hook.disable();
  process.off('unhandledRejection', onRejection);
});

/** Lists the tracked resources still alive that keep the event loop running. */
function refedResources(): string[] {
  return [...live.values()]
    .filter(({ resource }) => !waitTimers.has(resource))
    .filter(({ resource }) => resource.hasRef?.() ?? true)
    .map(({ type }) => type);
}

/** The timers of {@link leftOpen} itself; Node reports a fired timer destroyed only later. */
const waitTimers = new WeakSet<object>();

/**
 * Waits until every resource created since the test began is closed or no longer keeps the
 * process alive, for closes that finish a few event-loop turns later, and returns the types of
 * those still open.
 */
async function leftOpen(): Promise<string[]> {
  for (let turn = 0; turn < 100 && refedResources().length > 0; turn++) {
    await new Promise((resolve) => waitTimers.add(setTimeout(resolve, 20)));
  }
  return refedResources();
}

it('emulator and signer close cleanly', async () => {
  const kms = await new GcpKmsEmulator().start();
  kms.addKeyRing(keyRing);
  const key = kms.createKey({ keyRing });
  const signer = await createGcpKmsSigner(kms.reference(key.versionName));
  await signJwt(signer, clientSecretParts());
  expect(refedResources()).toContain('TCPSERVERWRAP');

  await signer.close?.();
  await kms.stop();
  expect(await leftOpen()).toEqual([]);
  expect(rejections).toEqual([]);
});

it('stop drops a pending slow answer', async () => {
  const kms = await new GcpKmsEmulator().start();
  kms.addKeyRing(keyRing);
  const key = kms.createKey({ keyRing });
  const client = emulatorClient(kms);
  kms.faults.slow = 1;
  kms.faults.slowMs = 60_000;
  const pending = client.getPublicKey({ name: key.versionName }, { retry: null }).then(
    () => 'answered',
    (error: { code?: unknown }) => error.code,
  );
  while (kms.count('GetPublicKey') === 0) await new Promise((resolve) => setImmediate(resolve));

  await kms.stop();
  expect(await pending).toEqual(expect.any(Number));
  await client.close();
  expect(await leftOpen()).toEqual([]);
  expect(rejections).toEqual([]);
});

it('signer gives up cleanly on a stopped emulator', async () => {
  const kms = await new GcpKmsEmulator().start();
  kms.addKeyRing(keyRing);
  const key = kms.createKey({ keyRing });
  const signer = await createGcpKmsSigner(kms.reference(key.versionName), { timeoutMs: 2_000 });
  await kms.stop();
  // The first attempt meets the shut-down connection (CANCELLED), the next ones find no
  // listener (UNAVAILABLE), and the last error decides the code.
  await expect(signer.sign(Buffer.from('a.b'))).rejects.toMatchObject({
    code: 'ERR_GCP_KMS_UNAVAILABLE',
  });
  await signer.close?.();
  expect(await leftOpen()).toEqual([]);
  expect(rejections).toEqual([]);
});
