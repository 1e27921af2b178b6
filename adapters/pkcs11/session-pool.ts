/**
 * A small pool of PKCS#11 sessions for one signer. A session runs one cryptographic operation at
 * a time (PKCS#11 v2.40 §5.6: a second C_SignInit on a busy session fails with
 * CKR_OPERATION_ACTIVE), so each concurrent sign leases a session of its own, and callers beyond
 * the pool size wait in line.
 */
import { KmsJwtError } from '../../src/errors.js';
import type { Handle } from './binding.js';

/** Opens and closes sessions for the pool. */
export interface SessionFactory {
  open(): Handle;
  close(session: Handle): void;
}

interface Waiter {
  resolve(session: Handle): void;
  reject(error: unknown): void;
}

/**
 * Leases sessions up to `maxSessions` at once. A session whose operation failed in an unknown
 * state is discarded instead of returned, so no lease ever inherits an active operation.
 *
 * @example
 * const pool = new SessionPool(factory, 4, 'pkcs11:token=apple;object=siwa');
 * const session = await pool.acquire();
 * try { sign(session); pool.release(session); } catch (e) { pool.discard(session); throw e; }
 */
export class SessionPool {
  private readonly idle: Handle[] = [];
  private readonly waiters: Waiter[] = [];
  private leased = 0;
  private closed = false;
  /** The generation each open session was opened in, by handle. */
  private readonly generations = new Map<string, number>();
  private generation = 0;
  private drained: (() => void) | undefined;

  constructor(
    private readonly factory: SessionFactory,
    private readonly maxSessions: number,
    private readonly keyId: string,
  ) {}

  /** Resolves to a session for the caller's exclusive use; `signal` cancels the wait. */
  async acquire(signal?: AbortSignal): Promise<Handle> {
    return this.tryAcquire() ?? this.wait(signal);
  }

  /** Leases an idle or a new session at once, or returns undefined when all are in use. */
  tryAcquire(): Handle | undefined {
    if (this.closed) throw this.closedError();
    const session = this.idle.pop();
    if (session) return this.lease(session);
    if (this.leased < this.maxSessions) return this.lease(this.open());
    return undefined;
  }

  /** Returns a healthy session to the pool, or hands it to the next waiter. */
  release(session: Handle): void {
    if (this.isRetired(session)) {
      this.discard(session);
      return;
    }
    this.leased -= 1;
    const waiter = this.waiters.shift();
    if (waiter && !this.closed) {
      waiter.resolve(this.lease(session));
      return;
    }
    // The token may have closed the session already, and a throw here would leave close()
    // waiting forever for a session that is counted as returned.
    if (this.closed) this.closeQuietly(session);
    else this.idle.push(session);
    this.checkDrained();
  }

  /** Closes a session whose state is unknown and frees its place in the pool. */
  discard(session: Handle): void {
    this.leased -= 1;
    this.closeQuietly(session);
    const waiter = this.waiters.shift();
    if (waiter && !this.closed) {
      this.openFor(waiter);
      return;
    }
    this.checkDrained();
  }

  /**
   * Closes every idle session and retires the leased ones, for example after the token closed
   * them all. A retired session is closed when it comes back, so it is never leased again.
   */
  retireAll(): void {
    this.generation += 1;
    for (const session of this.idle.splice(0)) this.closeQuietly(session);
  }

  /** Rejects waiting callers, waits for leased sessions to come back, then closes them all. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) waiter.reject(this.closedError());
    if (this.leased > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    this.retireAll();
  }

  private lease(session: Handle): Handle {
    this.leased += 1;
    return session;
  }

  private wait(signal: AbortSignal | undefined): Promise<Handle> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<Handle>((resolve, reject) => {
      const onAbort = () => {
        const index = this.waiters.indexOf(waiter);
        if (index !== -1) this.waiters.splice(index, 1);
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        resolve: (session) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(session);
        },
        reject: (error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      this.waiters.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private open(): Handle {
    const session = this.factory.open();
    this.generations.set(session.toString('hex'), this.generation);
    return session;
  }

  private isRetired(session: Handle): boolean {
    return this.generations.get(session.toString('hex')) !== this.generation;
  }

  private openFor(waiter: Waiter): void {
    try {
      waiter.resolve(this.lease(this.open()));
    } catch (error) {
      waiter.reject(error);
    }
  }

  private closeQuietly(session: Handle): void {
    this.generations.delete(session.toString('hex'));
    try {
      this.factory.close(session);
    } catch {
      // A session that is already invalid needs no closing.
    }
  }

  private checkDrained(): void {
    if (this.closed && this.leased === 0) this.drained?.();
  }

  private closedError(): KmsJwtError {
    return new KmsJwtError(
      'ERR_PKCS11_SIGNER_CLOSED',
      `The PKCS#11 signer for ${this.keyId} is closed. Create a new signer.`,
      { details: { keyId: this.keyId } },
    );
  }
}
