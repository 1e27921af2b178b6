// Types for fleet.mjs, which the JavaScript benchmarks share with the tests.
export interface FleetMessage {
  worker: string;
  type: string;
  id?: number;
  token?: string;
  iat?: number;
  error?: string;
  event?: { type: string; [field: string]: unknown };
  [field: string]: unknown;
}

export interface FleetWorkerConfig {
  /** Redis URL; without it each process keeps its own in-memory store. */
  url?: string;
  namespace: string;
  cacheKey: string;
  lockTtlMs?: number;
  pollIntervalMs?: number;
  fixedJitter?: number;
  hangFile?: string;
  mintDelayMs?: number;
}

export function createThrowawayKeyPem(): string;

export class FleetWorker {
  readonly name: string;
  readonly messages: FleetMessage[];
  readonly stderr: string;
  constructor(name: string, config: FleetWorkerConfig, keyPem: string);
  send(
    command: { cmd: string; [field: string]: unknown },
    timeoutMs?: number,
  ): Promise<FleetMessage>;
  waitFor(predicate: (message: FleetMessage) => boolean, timeoutMs?: number): Promise<FleetMessage>;
  count(type: string): number;
  events(type: string): Array<{ type: string; [field: string]: unknown }>;
  isAlive(): boolean;
  kill(): Promise<unknown>;
  close(): Promise<void>;
}

export function startFleet(
  count: number,
  config: FleetWorkerConfig,
  keyPem?: string,
): Promise<FleetWorker[]>;
