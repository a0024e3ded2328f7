import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

import { protoLoaderOptions } from '../../src/csi/proto.js';

/** Where the committed CSI types live, relative to the repository root. */
export const generatedDir = 'src/gen/csi';

/** proto-loader-gen-types flags that mirror `protoLoaderOptions`, so types match the runtime. */
const generatorFlags = [
  ...(protoLoaderOptions.keepCase ? ['--keepCase'] : []),
  `--longs=${protoLoaderOptions.longs.name}`,
  `--enums=${protoLoaderOptions.enums.name}`,
  ...(protoLoaderOptions.defaults ? ['--defaults'] : []),
  ...(protoLoaderOptions.oneofs ? ['--oneofs'] : []),
  '--grpcLib=@grpc/grpc-js',
  '--importFileExtension=.js',
];

/**
 * Writes the TypeScript types of csi.proto into `outDir`. The generator runs in the proto's
 * directory with a relative file name, so the "Original file" headers do not depend on where
 * the proto was downloaded to.
 */
export function generateCsiTypes(protoPath: string, outDir: string): void {
  const require = createRequire(import.meta.url);
  const generator = require.resolve('@grpc/proto-loader/build/bin/proto-loader-gen-types.js');
  execFileSync(
    process.execPath,
    [generator, ...generatorFlags, '-O', path.resolve(outDir), path.basename(protoPath)],
    { cwd: path.dirname(path.resolve(protoPath)), stdio: ['ignore', 'ignore', 'inherit'] },
  );
}

/** Every file below `dir`, as relative path -> content. */
export function readTree(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (sub: string): void => {
    for (const entry of readdirSync(path.join(dir, sub)).sort()) {
      const rel = path.join(sub, entry);
      if (statSync(path.join(dir, rel)).isDirectory()) walk(rel);
      else files.set(rel, readFileSync(path.join(dir, rel), 'utf8'));
    }
  };
  walk('');
  return files;
}

/** The files of `committedDir` that differ from a fresh generation (missing, extra or changed). */
export function staleGeneratedFiles(protoPath: string, committedDir: string): string[] {
  const fresh = mkdtempSync(path.join(os.tmpdir(), 'snapback-csi-gen-'));
  try {
    generateCsiTypes(protoPath, fresh);
    const want = readTree(fresh);
    let have: Map<string, string>;
    try {
      have = readTree(committedDir);
    } catch {
      have = new Map();
    }
    const names = new Set([...want.keys(), ...have.keys()]);
    return [...names].filter((name) => want.get(name) !== have.get(name)).sort();
  } finally {
    rmSync(fresh, { recursive: true, force: true });
  }
}
