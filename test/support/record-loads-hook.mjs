// module.register() hook for record-loads.mjs: appends the URL of every resolved ES module import.
import { appendFileSync } from 'node:fs';

let log;

export function initialize(data) {
  log = data.log;
}

export async function resolve(specifier, context, nextResolve) {
  const result = await nextResolve(specifier, context);
  appendFileSync(log, `esm ${result.url}\n`);
  return result;
}
