/** tcpfo's version: package.json's, read once (the CLI's --version, tcpfo_build_info). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from './io/paths.js';

export const VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
})();

/**
 * The data plane's protocol between the nodes (the divert option, the kernel
 * paths' marks and routes, the merge's expectations of the secondary's
 * output): two nodes pair only when it is the same. Raised when a change
 * needs both nodes upgraded together.
 */
export const DATA_PROTOCOL = 1;
