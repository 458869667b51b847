import { createRequire } from 'node:module';

/** This package's version, sent as the worker `version` (READY, reports). */
export const { version: VERSION } = createRequire(import.meta.url)('../package.json');
