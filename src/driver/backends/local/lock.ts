import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import os from 'node:os';

/** flock(1)'s exit status when another process holds the lock (its -E option). */
const heldElsewhere = 75;

/**
 * An exclusive flock(2) on a file, held until `release` or the end of the process. Node has no
 * flock, so flock(1) locks the open file description this process hands it as fd 3: such a lock
 * belongs to the description, not to flock(1), and lasts while this process keeps the file open.
 * The kernel drops it when the process dies (even by SIGKILL), so no stale lock survives a
 * crash, and it holds across PID namespaces, where two containers' drivers may share a PID.
 */
export class FileLock {
  private constructor(private readonly handle: FileHandle) {}

  /**
   * Takes the lock on `file` (created if needed) and records this process in it; when another
   * process holds it, throws an Error naming that process: "<what> is locked by pid ... <fix>".
   */
  static async acquire(file: string, what: string, fix: string): Promise<FileLock> {
    const handle = await open(file, constants.O_RDWR | constants.O_CREAT, 0o600);
    try {
      const status = await flock(handle.fd);
      if (status === heldElsewhere) {
        const holder = (await readFile(file, 'utf8')).trim() || 'a process that is starting';
        throw new Error(`${what} is locked by ${holder} (lock file ${file}); ${fix}`);
      }
      await handle.truncate(0);
      await handle.write(
        `pid ${process.pid} on host ${os.hostname()} since ${new Date().toISOString()}\n`,
        0,
      );
      await handle.sync();
      return new FileLock(handle);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  async release(): Promise<void> {
    await this.handle.close();
  }
}

function flock(fd: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'flock',
      ['--exclusive', '--nonblock', '--conflict-exit-code', String(heldElsewhere), '3'],
      { stdio: ['ignore', 'ignore', 'pipe', fd] },
    );
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', (error) => reject(new Error(`cannot run flock: ${error.message}`)));
    child.once('exit', (code) => {
      if (code === 0 || code === heldElsewhere) resolve(code);
      else reject(new Error(`flock failed (exit ${code ?? 'signal'}): ${stderr.trim()}`));
    });
  });
}
