// Starts a throwaway redis-server for tests and benchmarks: 127.0.0.1 only, a free port, its own
// temporary folder, no persistence. Callers stop it with stop(), which also removes the folder.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Returns why redis-server cannot run here, or undefined when it can. */
export function findRedisServerProblem() {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (probe.error) return `redis-server is not on PATH (${probe.error.code})`;
  if (probe.status !== 0) return `redis-server --version exited with ${probe.status}`;
  return undefined;
}

/** Finds a free TCP port on 127.0.0.1 by binding port 0 and closing the socket again. */
export function findFreePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once a PING on 127.0.0.1:port gets a reply, or rejects after timeoutMs. */
async function waitForPong(port, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ping(port)) return;
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function ping(port) {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let reply = '';
    socket.setTimeout(500, () => socket.destroy());
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      if (reply.includes('\r\n')) socket.end();
    });
    // A server started with --requirepass replies -NOAUTH, which also shows it is up.
    socket.on('close', () => resolve(reply.startsWith('+PONG') || reply.startsWith('-NOAUTH')));
    socket.on('error', () => resolve(false));
  });
}

/**
 * Starts redis-server on 127.0.0.1. Pass `port` to start again on the port of a stopped server,
 * and `args` for more server options. Resolves to { port, url, stop() }.
 */
export async function startRedisServer(options = {}) {
  const port = options.port ?? (await findFreePort());
  const folder = mkdtempSync(join(tmpdir(), 'kms-jwt-redis-'));
  const child = spawn(
    'redis-server',
    [
      '--bind',
      '127.0.0.1',
      '--port',
      String(port),
      '--dir',
      folder,
      '--save',
      '',
      '--appendonly',
      'no',
      '--protected-mode',
      'yes',
      '--daemonize',
      'no',
      ...(options.args ?? []),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise((resolve) => child.once('exit', resolve));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(folder, { recursive: true, force: true });
  };

  try {
    await Promise.race([
      waitForPong(port, 10_000),
      exited.then((code) => {
        throw new Error(`redis-server exited with ${code}: ${output.slice(-500)}`);
      }),
    ]);
  } catch (error) {
    await stop();
    throw error;
  }
  return { port, url: `redis://127.0.0.1:${port}`, stop };
}
