/** Paths of compiled helper scripts that run inside rig hosts (they need `npm run build`). */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { PACKAGE_ROOT } from '../bridge/io/paths.js';

export const REPO_ROOT = PACKAGE_ROOT;

/** Absolute path of a compiled script, e.g. distScript('rig/helpers/syn-probe.js'). */
export function distScript(rel: string): string {
  const p = resolve(REPO_ROOT, 'dist', rel);
  if (!existsSync(p)) throw new Error(`${p} is missing: run \`npm run build\` first (npm test does)`);
  return p;
}
