// Module resolution hooks for load-trace.mjs. They run on the loader thread, so the trace is
// appended synchronously on every resolution; CommonJS require() calls made by ESM code are
// not seen here, so the start-up test also checks for node_modules in the ESM graph only.
import { appendFileSync } from 'node:fs';

export async function resolve(specifier, context, nextResolve) {
  const result = await nextResolve(specifier, context);
  if (process.env.LOAD_TRACE_FILE) appendFileSync(process.env.LOAD_TRACE_FILE, `${result.url}\n`);
  return result;
}
