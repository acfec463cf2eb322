// The package version, for the admin API document and the CLI.
import { createRequire } from 'node:module';

export const KEYBRIDGE_VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;
