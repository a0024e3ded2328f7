import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** snapback's version from package.json, which sits above both src/ (tsx) and dist/ (compiled). */
export function packageVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    if (path.dirname(dir) === dir) return 'unknown';
    dir = path.dirname(dir);
  }
  const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

/** The oldest Node that runs snapback: @kubernetes/client-node 2.x needs undici 8, which needs it. */
export const MINIMUM_NODE = '22.19.0';

/** Why a Node version cannot run snapback, in one line; undefined when it can. */
export function nodeVersionProblem(version: string): string | undefined {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number);
  const [wantMajor = 0, wantMinor = 0] = MINIMUM_NODE.split('.').map(Number);
  if (major > wantMajor || (major === wantMajor && minor >= wantMinor)) return undefined;
  return `Node ${version} is too old: snapback needs Node ${MINIMUM_NODE} or newer (Node 24 LTS recommended)`;
}
