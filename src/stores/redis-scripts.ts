/**
 * Lua scripts of the Redis token store. Each runs atomically on the server (Redis runs one
 * script at a time), which is what makes the lease and the fenced write safe across processes.
 */

/**
 * Takes the lease. KEYS: lock, fence counter. ARGV: owner token, lease time in milliseconds.
 * Returns the new fencing number, or nil while another owner holds the lock.
 */
export const acquireScript = `
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return fence
`;

/**
 * Stores a token unless a token written under a newer lease is stored already. KEYS: token,
 * fence counter. ARGV: record JSON, the lease's fencing number, time to live in milliseconds.
 * Returns 1 when stored and 0 when dropped. A stored value that does not decode is replaced.
 * The counter is raised to the written number, so that after Redis lost the counter (a restart
 * without persistence) new leases still get numbers above every stored token's.
 */
export const writeScript = `
local fence = tonumber(ARGV[2])
local current = redis.call('GET', KEYS[1])
if current then
  local ok, stored = pcall(cjson.decode, current)
  if ok and type(stored) == 'table' and tonumber(stored.fence) ~= nil
      and tonumber(stored.fence) > fence then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
if tonumber(redis.call('GET', KEYS[2]) or '0') < fence then
  redis.call('SET', KEYS[2], ARGV[2])
end
return 1
`;

/** Deletes the lock only while this owner holds it. KEYS: lock. ARGV: owner token. */
export const releaseScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`;
