import { createHash, type Hash } from 'node:crypto';
import { createWriteStream, existsSync, statSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { isRunning } from './steps.js';
import { tarStream, type TarEntry } from './tar.js';

/** Writes an OCI image layout (image-spec v1.1 `image-layout.md`): blobs, manifests, index. */

export const MEDIA_TYPE = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

export const REF_NAME = 'org.opencontainers.image.ref.name';

/** The `created` time of every config and history entry, so digests depend on content alone. */
export const FIXED_CREATED = '1970-01-01T00:00:00Z';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string };
  annotations?: Record<string, string>;
}

/** A layer blob and the digest of its uncompressed tar (the config's `rootfs.diff_ids`). */
export interface LayerDescriptor extends Descriptor {
  diffId: string;
}

export type Compression = 'none' | 'gzip';

/** The runtime part of an image config (image-spec `config.md`, `config` object). */
export interface RuntimeConfig {
  User?: string;
  Env?: string[];
  WorkingDir?: string;
  Entrypoint?: string[];
  Cmd?: string[];
  ExposedPorts?: Record<string, Record<string, never>>;
  StopSignal?: string;
}

export interface ImageSpec {
  /** `<repository>:<tag>`, recorded as the manifest's ref.name annotation in index.json. */
  ref: string;
  config: RuntimeConfig;
  /** Bottom layer first, each with what made it (the config's `history`). */
  layers: { layer: LayerDescriptor; createdBy: string }[];
}

export const PLATFORM = { architecture: 'amd64', os: 'linux' } as const;

const sha256 = (bytes: Buffer | string) =>
  `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

function hashing(hash: Hash, count: { bytes: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      count.bytes += chunk.length;
      done(null, chunk);
    },
  });
}

export class OciLayout {
  constructor(readonly dir: string) {}

  blobPath(digest: string): string {
    const [algorithm, hex] = digest.split(':');
    if (algorithm !== 'sha256' || !/^[a-f0-9]{64}$/.test(hex ?? '')) {
      throw new Error(`not a sha256 digest: ${digest}`);
    }
    return path.join(this.dir, 'blobs', 'sha256', hex!);
  }

  /** Creates the layout's skeleton and removes what writers that died left half written. */
  async init(): Promise<void> {
    await mkdir(path.join(this.dir, 'blobs', 'sha256'), { recursive: true });
    for (const name of await readdir(path.join(this.dir, 'blobs'))) {
      const writer = /^\.tmp-(\d+)-/.exec(name)?.[1];
      if (writer && !isRunning(Number(writer)))
        await rm(path.join(this.dir, 'blobs', name), { force: true });
    }
    await writeFile(
      path.join(this.dir, 'oci-layout'),
      JSON.stringify({ imageLayoutVersion: '1.0.0' }),
    );
  }

  /** Whether the blob of `descriptor` is present with the right size. */
  hasBlob(descriptor: Descriptor): boolean {
    const file = this.blobPath(descriptor.digest);
    return existsSync(file) && statSync(file).size === descriptor.size;
  }

  private temporary(): string {
    return path.join(
      this.dir,
      'blobs',
      `.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`,
    );
  }

  async writeBlob(mediaType: string, bytes: Buffer): Promise<Descriptor> {
    const descriptor = { mediaType, digest: sha256(bytes), size: bytes.length };
    if (!this.hasBlob(descriptor)) {
      const temporary = this.temporary();
      await writeFile(temporary, bytes);
      await rename(temporary, this.blobPath(descriptor.digest));
    }
    return descriptor;
  }

  writeJson(mediaType: string, value: unknown): Promise<Descriptor> {
    return this.writeBlob(mediaType, Buffer.from(JSON.stringify(value)));
  }

  /** Writes the tar of `entries` as a layer blob, hashing it on the way (one pass, streamed). */
  async writeLayer(
    entries: Iterable<TarEntry>,
    compression: Compression,
  ): Promise<LayerDescriptor> {
    const tarHash = createHash('sha256');
    const tarBytes = { bytes: 0 };
    const blobHash = createHash('sha256');
    const blobBytes = { bytes: 0 };
    const temporary = this.temporary();
    try {
      const source = Readable.from(tarStream(entries));
      const file = createWriteStream(temporary);
      // Level 1: the registry is local, so compression only has to pay for itself on disk.
      await (compression === 'gzip'
        ? pipeline(
            source,
            hashing(tarHash, tarBytes),
            createGzip({ level: 1 }),
            hashing(blobHash, blobBytes),
            file,
          )
        : pipeline(source, hashing(tarHash, tarBytes), file));
      const diffId = `sha256:${tarHash.digest('hex')}`;
      const digest = compression === 'gzip' ? `sha256:${blobHash.digest('hex')}` : diffId;
      await rename(temporary, this.blobPath(digest));
      return {
        mediaType: compression === 'gzip' ? MEDIA_TYPE.layerGzip : MEDIA_TYPE.layer,
        digest,
        size: compression === 'gzip' ? blobBytes.bytes : tarBytes.bytes,
        diffId,
      };
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
  }

  /** Writes the image's config and manifest; returns the manifest's descriptor for index.json. */
  async writeImage(image: ImageSpec): Promise<Descriptor> {
    const config = await this.writeJson(MEDIA_TYPE.config, {
      created: FIXED_CREATED,
      architecture: PLATFORM.architecture,
      os: PLATFORM.os,
      config: image.config,
      rootfs: { type: 'layers', diff_ids: image.layers.map(({ layer }) => layer.diffId) },
      history: image.layers.map(({ createdBy }) => ({
        created: FIXED_CREATED,
        created_by: createdBy,
      })),
    });
    const manifest = await this.writeJson(MEDIA_TYPE.manifest, {
      schemaVersion: 2,
      mediaType: MEDIA_TYPE.manifest,
      config,
      layers: image.layers.map(({ layer }) => ({
        mediaType: layer.mediaType,
        digest: layer.digest,
        size: layer.size,
      })),
    });
    return { ...manifest, platform: { ...PLATFORM }, annotations: { [REF_NAME]: image.ref } };
  }

  /** Replaces index.json (atomically) with these manifests. */
  async writeIndex(manifests: Descriptor[]): Promise<void> {
    const temporary = this.temporary();
    await writeFile(
      temporary,
      JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPE.index, manifests }, null, 2) + '\n',
    );
    await rename(temporary, path.join(this.dir, 'index.json'));
  }

  /** Deletes the blobs index.json no longer reaches; returns how many bytes that freed. */
  async removeUnreferenced(): Promise<number> {
    const reachable = new Set<string>();
    const visit = async (descriptor: Descriptor): Promise<void> => {
      reachable.add(descriptor.digest);
      if (
        descriptor.mediaType !== MEDIA_TYPE.manifest &&
        descriptor.mediaType !== MEDIA_TYPE.index
      ) {
        return;
      }
      const document = JSON.parse(await readFile(this.blobPath(descriptor.digest), 'utf8')) as {
        config?: Descriptor;
        layers?: Descriptor[];
        manifests?: Descriptor[];
      };
      for (const child of [
        document.config,
        ...(document.layers ?? []),
        ...(document.manifests ?? []),
      ]) {
        if (child) await visit(child);
      }
    };
    const index = JSON.parse(await readFile(path.join(this.dir, 'index.json'), 'utf8')) as {
      manifests: Descriptor[];
    };
    for (const manifest of index.manifests) await visit(manifest);
    let freed = 0;
    const blobs = path.join(this.dir, 'blobs', 'sha256');
    for (const name of await readdir(blobs)) {
      if (reachable.has(`sha256:${name}`)) continue;
      freed += statSync(path.join(blobs, name)).size;
      await rm(path.join(blobs, name), { force: true });
    }
    return freed;
  }
}
