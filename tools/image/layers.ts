import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Compression, LayerDescriptor, OciLayout } from './oci.js';
import type { TarEntry } from './tar.js';

/**
 * Layers are cached by what goes into them: a layer whose inputs are unchanged is not
 * written again, its blob is reused from the layout.
 */

export interface LayerRecipe {
  /** What made the layer, for progress lines and the config's history. */
  createdBy: string;
  /**
   * Set when the sources are a cache entry that never changes once made (a debootstrap rootfs,
   * a staged node_modules): the key stands for their content, which is then not read.
   * Without it every source file's content is hashed.
   */
  immutableKey?: string;
  entries: () => TarEntry[];
}

export interface BuiltLayer {
  layer: LayerDescriptor;
  createdBy: string;
  reused: boolean;
  seconds: number;
}

// The writer's own source is part of every key: a change to the tar format rebuilds layers.
const writerVersion = createHash('sha256')
  .update(readFileSync(fileURLToPath(new URL('./tar.ts', import.meta.url))))
  .digest('hex');

async function fileDigest(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}

/** The cache key of a layer: the writer, the compression and the layer's inputs. */
export async function layerFingerprint(
  recipe: LayerRecipe,
  compression: Compression,
): Promise<string> {
  const hash = createHash('sha256');
  hash.update(JSON.stringify({ writerVersion, compression, createdBy: recipe.createdBy }));
  if (recipe.immutableKey !== undefined) {
    hash.update(`immutable:${recipe.immutableKey}`);
    return hash.digest('hex');
  }
  for (const entry of recipe.entries()) {
    const { path: entryPath, type, mode, uid, gid } = entry;
    hash.update(JSON.stringify({ entryPath, type, mode, uid, gid }));
    if (entry.type === 'symlink' || entry.type === 'hardlink') hash.update(`->${entry.target}`);
    if (entry.type === 'file') {
      hash.update(
        'content' in entry
          ? createHash('sha256').update(entry.content).digest('hex')
          : await fileDigest(entry.source),
      );
    }
  }
  return hash.digest('hex');
}

/** The layer for `recipe`: the cached blob when its inputs are unchanged, else a new one. */
export async function buildLayer(
  layout: OciLayout,
  cacheDir: string,
  recipe: LayerRecipe,
  compression: Compression,
): Promise<BuiltLayer> {
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  const record = path.join(cacheDir, `${await layerFingerprint(recipe, compression)}.json`);
  if (existsSync(record)) {
    const layer = JSON.parse(await readFile(record, 'utf8')) as LayerDescriptor;
    if (layout.hasBlob(layer))
      return { layer, createdBy: recipe.createdBy, reused: true, seconds: seconds() };
  }
  const layer = await layout.writeLayer(recipe.entries(), compression);
  await mkdir(cacheDir, { recursive: true });
  await writeFile(`${record}.tmp-${process.pid}`, JSON.stringify(layer));
  await rename(`${record}.tmp-${process.pid}`, record);
  return { layer, createdBy: recipe.createdBy, reused: false, seconds: seconds() };
}
