// The parent side of a test fleet: starts fleet-worker.mjs processes and talks to them.
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const workerPath = join(dirname(fileURLToPath(import.meta.url)), 'fleet-worker.mjs');

/** Generates a throwaway P-256 key for one test run, as PKCS#8 PEM. */
export function createThrowawayKeyPem() {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return privateKey.export({ type: 'pkcs8', format: 'pem' });
}

/** One worker process: send() a command and await its reply; messages lists everything sent. */
export class FleetWorker {
  constructor(name, config, keyPem) {
    this.name = name;
    this.messages = [];
    this.stderr = '';
    this.nextId = 0;
    this.pending = new Map();
    this.waiters = [];
    this.child = spawn(process.execPath, [workerPath], {
      env: {
        ...process.env,
        FLEET_WORKER_CONFIG: JSON.stringify({ ...config, name }),
        FLEET_WORKER_KEY: keyPem,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stderr.on('data', (chunk) => (this.stderr += chunk));
    let buffered = '';
    this.child.stdout.on('data', (chunk) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop();
      for (const line of lines) if (line.trim() !== '') this.#receive(JSON.parse(line));
    });
  }

  #receive(message) {
    this.messages.push(message);
    if (message.type === 'reply') {
      this.pending.get(message.id)?.(message);
      this.pending.delete(message.id);
    }
    this.waiters = this.waiters.filter((waiter) => !waiter(message));
  }

  /** Sends a command and resolves to the worker's reply. */
  send(command, timeoutMs = 20_000) {
    const id = (this.nextId += 1);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${this.name}: no reply to ${command.cmd}. stderr: ${this.stderr}`));
      }, timeoutMs);
      this.pending.set(id, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      this.child.stdin.write(`${JSON.stringify({ id, ...command })}\n`);
    });
  }

  /** Resolves with the first message, past or future, that matches `predicate`. */
  waitFor(predicate, timeoutMs = 20_000) {
    const seen = this.messages.find(predicate);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.name}: no matching message. stderr: ${this.stderr}`)),
        timeoutMs,
      );
      this.waiters.push((message) => {
        if (!predicate(message)) return false;
        clearTimeout(timer);
        resolve(message);
        return true;
      });
    });
  }

  count(type) {
    return this.messages.filter((message) => message.type === type).length;
  }

  events(type) {
    return this.messages
      .filter((message) => message.type === 'event' && message.event.type === type)
      .map((message) => message.event);
  }

  isAlive() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  kill() {
    this.child.kill('SIGKILL');
    return this.exited;
  }

  async close() {
    if (!this.isAlive()) return;
    await this.send({ cmd: 'close' }, 5_000).catch(() => this.child.kill('SIGKILL'));
    await this.exited;
  }
}

/** Starts `count` workers and waits until each has loaded the package and reached Redis. */
export async function startFleet(count, config, keyPem = createThrowawayKeyPem()) {
  const workers = Array.from({ length: count }, (_, index) => {
    return new FleetWorker(`worker-${index + 1}`, config, keyPem);
  });
  await Promise.all(workers.map((worker) => worker.waitFor((message) => message.type === 'ready')));
  const connected = await Promise.all(workers.map((worker) => worker.send({ cmd: 'connect' })));
  const failed = connected.find((reply) => reply.error !== undefined);
  if (failed !== undefined) throw new Error(`${failed.worker} cannot reach Redis: ${failed.error}`);
  return workers;
}
