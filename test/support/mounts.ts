/**
 * Clean-up of what a stopped or killed local driver leaves on the machine: mounts and loop
 * devices under the directories a test run owns. Synchronous, so an exit handler can run it.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseMountinfo } from '../../src/driver/backends/local/mounts.js';

function trySh(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Unmounts everything at or under `dir`, deepest first. */
export function unmountUnder(dir: string): void {
  const mounts = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'))
    .map((m) => m.mountPoint)
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const mountPoint of mounts) {
    if (!trySh('umount', [mountPoint])) trySh('umount', ['-l', mountPoint]);
  }
}

/** Detaches the loop devices whose backing files lie under one of `dirs`. */
export function detachLoopsUnder(dirs: string[]): void {
  let listing: string;
  try {
    listing = execFileSync('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE'], {
      encoding: 'utf8',
    });
  } catch {
    return;
  }
  for (const line of listing.split('\n')) {
    const [device, ...file] = line.trim().split(/\s+/);
    const backing = file.join(' ').replace(/ \(deleted\)$/, '');
    if (device && dirs.some((dir) => backing.startsWith(`${dir}/`))) {
      trySh('losetup', ['--detach', device]);
    }
  }
}
