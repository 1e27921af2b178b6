// Preload (`node --import`) that records every module the process loads, for the test that proves
// the root entry loads no cloud SDK, native binding or asn1js. ES modules are recorded by a
// module.register() resolve hook, CommonJS by wrapping Module._load, and native addons by wrapping
// process.dlopen. Each record is one line appended to the file named by KMS_JWT_LOAD_LOG.
import { appendFileSync } from 'node:fs';
import Module, { register } from 'node:module';

const log = process.env.KMS_JWT_LOAD_LOG;
if (!log) throw new Error('record-loads.mjs needs KMS_JWT_LOAD_LOG, the file to append to.');

function record(kind, what) {
  appendFileSync(log, `${kind} ${what}\n`);
}

register('./record-loads-hook.mjs', import.meta.url, { data: { log } });

const originalLoad = Module._load;
Module._load = function recordedLoad(request, parent, isMain) {
  let resolved = request;
  try {
    resolved = Module._resolveFilename(request, parent, isMain);
  } catch {
    // Unresolvable requests fail in the original loader below, with its own error.
  }
  record('cjs', resolved);
  return originalLoad.call(this, request, parent, isMain);
};

const originalDlopen = process.dlopen;
process.dlopen = function recordedDlopen(module, filename, ...rest) {
  record('native', filename);
  return originalDlopen.call(this, module, filename, ...rest);
};

/** Writes a marker line, so that a test can tell which loads came before and after it. */
globalThis.recordLoadMarker = (name) => record('marker', name);
