// Types for redis-server.mjs, which the JavaScript benchmarks share with the tests.
export interface RedisServer {
  port: number;
  url: string;
  stop(): Promise<void>;
}
export function findRedisServerProblem(): string | undefined;
export function findFreePort(): Promise<number>;
export function startRedisServer(options?: {
  port?: number;
  args?: string[];
}): Promise<RedisServer>;
