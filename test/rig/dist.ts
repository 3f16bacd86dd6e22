/** Paths of compiled helper scripts that run inside rig hosts (they need `npm run build`). */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, whether this module runs from source (vitest) or from dist/. */
export const REPO_ROOT = (() => {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) {
    const up = dirname(d);
    if (up === d) throw new Error('cannot find the repository root');
    d = up;
  }
  return d;
})();

/** Absolute path of a compiled script, e.g. distScript('test/rig/helpers/syn-probe.js'). */
export function distScript(rel: string): string {
  const p = resolve(REPO_ROOT, 'dist', rel);
  if (!existsSync(p)) throw new Error(`${p} is missing: run \`npm run build\` first (npm test does)`);
  return p;
}
