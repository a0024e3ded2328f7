import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { isRunning, runLogged } from './steps.js';

/** The image's production node_modules: `npm ci --omit=dev` in a staging directory. */

/** The files /app gets beside node_modules, as the Dockerfile's COPY lists them. */
export function packageFiles(repoRoot: string): string[] {
  return ['package.json', 'package-lock.json', '.npmrc'].filter((name) =>
    existsSync(path.join(repoRoot, name)),
  );
}

/** What the staged node_modules depend on: the lock file and npm's configuration. */
export function productionDepsKey(repoRoot: string): string {
  const hash = createHash('sha256');
  for (const name of ['package-lock.json', '.npmrc']) {
    const file = path.join(repoRoot, name);
    hash.update(`${name}\0`).update(existsSync(file) ? readFileSync(file) : '');
  }
  return hash.digest('hex').slice(0, 32);
}

export interface StagedDeps {
  /** The directory holding node_modules. */
  dir: string;
  key: string;
  built: boolean;
  seconds: number;
}

export async function ensureProductionDeps(
  repoRoot: string,
  options: { cacheDir: string; logDir: string },
): Promise<StagedDeps> {
  const started = performance.now();
  const key = productionDepsKey(repoRoot);
  const dir = path.join(options.cacheDir, key);
  if (existsSync(path.join(dir, 'node_modules'))) return { dir, key, built: false, seconds: 0 };

  await mkdir(options.cacheDir, { recursive: true });
  await mkdir(options.logDir, { recursive: true });
  for (const name of readdirSync(options.cacheDir)) {
    const writer = new RegExp(`^${key}\\.partial-(\\d+)$`).exec(name)?.[1];
    if (writer && !isRunning(Number(writer))) {
      await rm(path.join(options.cacheDir, name), { recursive: true, force: true });
    }
  }
  const partial = `${dir}.partial-${process.pid}`;
  await mkdir(partial, { recursive: true });
  for (const name of packageFiles(repoRoot))
    await copyFile(path.join(repoRoot, name), path.join(partial, name));
  const logFile = path.join(options.logDir, `npm-ci-${key}.log`);
  await rm(logFile, { force: true });
  // npm runs on the node that runs this build (the Node 24 the image gets), not an older one.
  const env = {
    ...process.env,
    PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}`,
  };
  try {
    await runLogged(
      'npm ci --omit=dev (production node_modules)',
      'npm',
      ['ci', '--omit=dev', '--no-audit', '--no-fund'],
      logFile,
      {
        cwd: partial,
        env,
        errorLine: /npm error|ERR!/,
      },
    );
  } catch (error) {
    await rm(partial, { recursive: true, force: true });
    throw error;
  }
  await rm(dir, { recursive: true, force: true });
  await rename(partial, dir);
  return { dir, key, built: true, seconds: (performance.now() - started) / 1000 };
}
