#!/usr/bin/env node
// Runs the TypeScript CLI with Node's built-in type stripping (Node >= 22.18 / 24).
import module from 'node:module';

// V8's compile cache (also what NODE_COMPILE_CACHE turns on): later runs skip recompiling.
module.enableCompileCache?.(new URL('../node_modules/.cache/keybridge/compile', import.meta.url).pathname);
await import('../src/cli/main.ts');
