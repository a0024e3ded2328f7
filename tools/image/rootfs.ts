import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { isRunning, runLogged, StepError } from './steps.js';

/** Debian root file systems made by debootstrap, cached by what they are made of. */

export interface RootfsSpec {
  suite: string;
  variant: 'minbase';
  arch: 'amd64';
  /** Installed on top of the variant (debootstrap --include). */
  packages: string[];
}

export function rootfsKey(spec: RootfsSpec): string {
  const canonical = {
    suite: spec.suite,
    variant: spec.variant,
    arch: spec.arch,
    packages: [...new Set(spec.packages)].sort(),
  };
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex').slice(0, 32);
}

export interface AptSource {
  uri: string;
  keyring?: string;
}

/** Paragraphs of a deb822 file as field maps (continuation lines joined). */
function deb822(text: string): Map<string, string>[] {
  return text
    .split(/\n\s*\n/)
    .map((paragraph) => {
      const fields = new Map<string, string>();
      let last: string | undefined;
      for (const line of paragraph.split('\n')) {
        if (line.startsWith('#')) continue;
        if (/^\s/.test(line) && last) fields.set(last, `${fields.get(last)} ${line.trim()}`);
        const match = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
        if (match) fields.set((last = match[1]!.toLowerCase()), match[2]!.trim());
      }
      return fields;
    })
    .filter((fields) => fields.size > 0);
}

/**
 * The Debian mirror this machine's apt uses for `suite`, from /etc/apt/sources.list.d/*.sources
 * or /etc/apt/sources.list: never a host written into the repository.
 */
export function debianMirror(suite: string, aptDir = '/etc/apt'): AptSource {
  const listDir = path.join(aptDir, 'sources.list.d');
  const files = existsSync(listDir)
    ? readdirSync(listDir)
        .sort()
        .map((name) => path.join(listDir, name))
    : [];
  for (const file of files.filter((name) => name.endsWith('.sources'))) {
    for (const fields of deb822(readFileSync(file, 'utf8'))) {
      const words = (name: string) => (fields.get(name) ?? '').split(/\s+/);
      if (fields.get('enabled') === 'no' || !words('types').includes('deb')) continue;
      if (!words('suites').includes(suite) || !words('components').includes('main')) continue;
      const uri = words('uris')[0];
      const signedBy = fields.get('signed-by');
      if (uri) return { uri, keyring: signedBy?.startsWith('/') ? signedBy : undefined };
    }
  }
  for (const file of [
    path.join(aptDir, 'sources.list'),
    ...files.filter((name) => name.endsWith('.list')),
  ]) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const match = /^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s+(.*)$/.exec(line.trim());
      if (!match || match[3] !== suite || !match[4]!.split(/\s+/).includes('main')) continue;
      const keyring = /signed-by=(\S+)/.exec(match[1] ?? '')?.[1];
      return { uri: match[2]!, keyring };
    }
  }
  throw new StepError(
    `finding a Debian mirror for ${suite}`,
    `no "deb ... ${suite} main" source in ${aptDir}/sources.list or ${listDir}`,
  );
}

/** debootstrap on PATH, or in the sbin directories a non-login root shell may lack. */
function findDebootstrap(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin'];
  return dirs.map((dir) => path.join(dir, 'debootstrap')).find((file) => existsSync(file));
}

/** Mount points at or under `dir`, deepest first (what a killed debootstrap leaves mounted). */
function mountsUnder(dir: string): string[] {
  const unescape = (field: string) =>
    field.replace(/\\([0-7]{3})/g, (_, code: string) => String.fromCharCode(parseInt(code, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => unescape(line.split(' ')[4] ?? ''))
    .filter((mountPoint) => mountPoint === dir || mountPoint.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

async function removeTree(dir: string): Promise<void> {
  for (const mountPoint of mountsUnder(dir)) spawnSync('umount', ['-l', mountPoint]);
  if (mountsUnder(dir).length > 0) throw new Error(`${dir} still has mounts; not removing it`);
  await rm(dir, { recursive: true, force: true });
}

export interface Rootfs {
  dir: string;
  key: string;
  built: boolean;
  seconds: number;
}

/** The cached rootfs for `spec`, made with debootstrap when it is not in the cache yet. */
export async function ensureRootfs(
  spec: RootfsSpec,
  options: { cacheDir: string; logDir: string; label: string },
): Promise<Rootfs> {
  const started = performance.now();
  const key = rootfsKey(spec);
  const dir = path.join(options.cacheDir, key);
  if (existsSync(dir)) return { dir, key, built: false, seconds: 0 };

  const step = `debootstrap of the ${options.label} rootfs (${spec.suite} ${spec.variant} + ${spec.packages.join(',')})`;
  const debootstrap = findDebootstrap();
  if (!debootstrap)
    throw new StepError(step, 'debootstrap is not installed: apt-get install debootstrap');
  if (process.getuid?.() !== 0)
    throw new StepError(step, 'debootstrap needs root: run make image as root');

  await mkdir(options.cacheDir, { recursive: true });
  await mkdir(options.logDir, { recursive: true });
  for (const name of readdirSync(options.cacheDir)) {
    const writer = new RegExp(`^${key}\\.partial-(\\d+)$`).exec(name)?.[1];
    if (writer && !isRunning(Number(writer))) await removeTree(path.join(options.cacheDir, name));
  }
  const partial = `${dir}.partial-${process.pid}`;
  const logFile = path.join(options.logDir, `debootstrap-${options.label}-${key}.log`);
  await rm(logFile, { force: true });
  const mirror = debianMirror(spec.suite);
  const args = [
    `--variant=${spec.variant}`,
    `--arch=${spec.arch}`,
    '--components=main',
    ...(mirror.keyring && existsSync(mirror.keyring) ? [`--keyring=${mirror.keyring}`] : []),
    ...(spec.packages.length > 0 ? [`--include=${spec.packages.join(',')}`] : []),
    spec.suite,
    partial,
    mirror.uri,
  ];
  try {
    await runLogged(step, debootstrap, args, logFile, { errorLine: /^E: / });
  } catch (error) {
    await removeTree(partial);
    throw error;
  }
  if (mountsUnder(partial).length > 0) {
    throw new StepError(step, `debootstrap left mounts under ${partial}`, logFile);
  }
  await rename(partial, dir);
  return { dir, key, built: true, seconds: (performance.now() - started) / 1000 };
}
