// Preloaded with `node --import ./test/cli/load-trace.mjs`: records the URL of every module the
// process resolves, one a line, in the file named by LOAD_TRACE_FILE. The start-up test uses it
// to prove that a command loads no SDK, native binding or other adapter it does not need.
import { register } from 'node:module';

register('./load-trace-hooks.mjs', import.meta.url);
