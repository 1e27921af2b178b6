// One process of a test fleet: a token provider on the Redis store of the built package, minting
// real APNs tokens with a throwaway key. The parent drives it with JSON lines on stdin and reads
// JSON lines on stdout. Its clocks run at real speed plus an offset that `advance` moves, so the
// parent can jump the whole fleet ahead by minutes while Redis lock expiry stays real.
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import {
  appleTokenProfiles,
  createApnsToken,
  createMemoryStore,
  createTokenProvider,
} from '../../dist/index.js';
import { createPemSigner } from '../../dist/pem.js';
import { createRedisStore } from '../../dist/redis-store.js';

const config = JSON.parse(process.env.FLEET_WORKER_CONFIG);
let offsetMs = 0;
const now = () => Date.now() + offsetMs;
const monotonicNow = () => performance.now() + offsetMs;

function send(message) {
  process.stdout.write(`${JSON.stringify({ worker: config.name, ...message })}\n`);
}

const signer = await createPemSigner({ pem: process.env.FLEET_WORKER_KEY });
// Without a URL each process keeps its own in-memory store, as an unshared deployment would.
const store =
  config.url === undefined
    ? createMemoryStore()
    : createRedisStore({
        url: config.url,
        namespace: config.namespace,
        now,
        onEvent: (event) => send({ type: 'event', event }),
      });

// Blocks while the parent's hang file exists, so the parent can kill a process mid-mint.
async function waitWhileHangFileExists() {
  while (config.hangFile !== undefined && existsSync(config.hangFile)) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const provider = createTokenProvider({
  store,
  cacheKey: config.cacheKey,
  policy: appleTokenProfiles.apns.refreshPolicy,
  lockTtlMs: config.lockTtlMs,
  pollIntervalMs: config.pollIntervalMs,
  now,
  monotonicNow,
  random: config.fixedJitter === undefined ? Math.random : () => config.fixedJitter,
  onEvent: (event) => send({ type: 'event', event }),
  mint: async () => {
    send({ type: 'mint-start' });
    await waitWhileHangFileExists();
    await new Promise((resolve) => setTimeout(resolve, config.mintDelayMs ?? 0));
    const apns = await createApnsToken({ signer, teamId: 'DEF123GHIJ', keyId: 'ABC123DEFG', now });
    send({ type: 'mint-done', iat: apns.claims.iat });
    return { token: apns.token, iat: apns.claims.iat, exp: undefined };
  },
});

async function handle(command) {
  if (command.cmd === 'get') {
    try {
      const record = await provider.getRecord();
      return { token: record.token, iat: record.iat };
    } catch (error) {
      return { error: error.code ?? String(error) };
    }
  }
  if (command.cmd === 'connect') {
    // Opens the Redis connection, so that a later get() races the other processes at once.
    // Many processes starting together on a small machine can take longer than one deadline.
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await store.read('connect-check');
        return { connected: true };
      } catch (error) {
        if (Date.now() > deadline) return { error: error.code ?? String(error) };
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }
  if (command.cmd === 'advance') {
    offsetMs += command.seconds * 1000;
    return { offsetMs };
  }
  if (command.cmd === 'close') {
    await provider.close();
    await store.close?.();
    setImmediate(() => process.exit(0));
    return { closed: true };
  }
  return { error: `unknown command ${command.cmd}` };
}

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const command = JSON.parse(line);
  handle(command).then(
    (reply) => send({ type: 'reply', id: command.id, ...reply }),
    (error) => send({ type: 'reply', id: command.id, error: error.code ?? String(error) }),
  );
});
lines.on('close', () => process.exit(0));
send({ type: 'ready' });
