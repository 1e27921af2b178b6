// Preload (`node --import`) for child processes that must never reach another host. Every socket
// connect and every DNS query for anything but a loopback address fails at once, and each
// blocked attempt is recorded in globalThis.blockedNetworkAttempts for the child to report.
import dns from 'node:dns';
import net from 'node:net';
import { syncBuiltinESMExports } from 'node:module';

const blocked = [];
globalThis.blockedNetworkAttempts = blocked;

function isLoopback(host) {
  const name = String(host);
  return name === 'localhost' || name === '::1' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

function blockedError(attempt) {
  blocked.push(attempt);
  return Object.assign(new Error(`loopback-only: blocked ${attempt}`), { code: 'ECONNREFUSED' });
}

// net, tls, http, https, http2 and fetch all connect through net.Socket.prototype.connect.
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function loopbackConnect(...args) {
  const first = args[0];
  const options = typeof first === 'object' && first !== null ? first : {};
  const isPipe = typeof first === 'string' || typeof options.path === 'string';
  const host = typeof first === 'object' && first !== null ? options.host : args[1];
  const port = typeof first === 'object' && first !== null ? options.port : first;
  if (isPipe || isLoopback(host ?? 'localhost')) return connect.apply(this, args);

  const error = blockedError(`connect to ${host}:${port}`);
  process.nextTick(() => this.destroy(error));
  return this;
};

const lookup = dns.lookup;
dns.lookup = function loopbackLookup(host, ...rest) {
  if (isLoopback(host)) return lookup.call(this, host, ...rest);
  const callback = rest.at(-1);
  const error = blockedError(`DNS lookup of ${host}`);
  process.nextTick(() => callback(error));
  return {};
};

const promiseLookup = dns.promises.lookup;
dns.promises.lookup = function loopbackLookup(host, ...rest) {
  if (isLoopback(host)) return promiseLookup.call(this, host, ...rest);
  return Promise.reject(blockedError(`DNS lookup of ${host}`));
};

// Queries to DNS servers: none is needed, so every one fails.
const queries = Object.keys(dns.Resolver.prototype).filter((n) => /^(resolve|reverse)/.test(n));
for (const name of queries) {
  const queryError = (hostname) => blockedError(`DNS ${name} of ${hostname}`);
  const callbackQuery = function (hostname, ...rest) {
    const callback = rest.at(-1);
    const error = queryError(hostname);
    process.nextTick(() => callback(error));
    return {};
  };
  const promiseQuery = (hostname) => Promise.reject(queryError(hostname));
  dns[name] = callbackQuery;
  dns.Resolver.prototype[name] = callbackQuery;
  if (typeof dns.promises[name] === 'function') dns.promises[name] = promiseQuery;
  dns.promises.Resolver.prototype[name] = promiseQuery;
}

syncBuiltinESMExports();
