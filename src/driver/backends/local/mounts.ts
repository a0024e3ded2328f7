import { readFile } from 'node:fs/promises';

import type { CommandRunner } from './system.js';

export interface MountEntry {
  mountPoint: string;
  /** The path inside the mounted file system that appears at mountPoint ("/" unless a bind of a subdirectory). */
  root: string;
  fsType: string;
  source: string;
  options: string[];
}

/** Undoes the octal escapes (\040 for a space...) of /proc/self/mountinfo. */
const unescape = (field: string): string =>
  field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));

/** Parses /proc/self/mountinfo (see proc(5)). */
export function parseMountinfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const fields = left.split(' ');
    const [fsType, source] = right.split(' ');
    if (fields.length < 6 || !fsType || source === undefined) continue;
    entries.push({
      root: unescape(fields[3]!),
      mountPoint: unescape(fields[4]!),
      options: fields[5]!.split(','),
      fsType,
      source: unescape(source),
    });
  }
  return entries;
}

export async function readMounts(): Promise<MountEntry[]> {
  return parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

/** The topmost mount at `path`, if `path` is a mount point. */
export function mountAt(mounts: MountEntry[], path: string): MountEntry | undefined {
  return mounts.findLast((m) => m.mountPoint === path);
}

export const isReadOnly = (mount: MountEntry): boolean => mount.options.includes('ro');

/** Loop devices whose backing file is `image`. */
export async function loopDevicesOf(run: CommandRunner, image: string): Promise<string[]> {
  const out = await run('losetup', ['--noheadings', '--output', 'NAME', '--associated', image]);
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
}
