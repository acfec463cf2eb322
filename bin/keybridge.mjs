#!/usr/bin/env node
// Runs the TypeScript CLI with Node's built-in type stripping (Node >= 22.18 / 24).
import '../src/cli/main.ts';
