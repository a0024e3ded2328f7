import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';

/**
 * Child processes the test harness started, killed by PID when this process exits for any
 * reason short of SIGKILL (for that case, see the run registry in control-plane.ts).
 */
const owned = new Map<number, ChildProcess>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const pid of owned.keys()) killQuietly(pid, 'SIGKILL');
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      for (const pid of owned.keys()) killQuietly(pid, 'SIGKILL');
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  }
}

export function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // a zombie still answers kill(0); it is gone for our purposes
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The command line of a live process, or undefined. */
export function commandLine(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return undefined;
  }
}

export interface StartOptions {
  /** Where stdout and stderr go. */
  logFile: string;
  /**
   * Owned processes die with this process. A process that is not owned (`make up`) runs in
   * its own session and outlives the command that started it.
   */
  owned: boolean;
  env?: NodeJS.ProcessEnv;
}

export function startProcess(binary: string, args: string[], options: StartOptions): ChildProcess {
  const log = openSync(options.logFile, 'a');
  try {
    const child = spawn(binary, args, {
      stdio: ['ignore', log, log],
      detached: !options.owned,
      env: options.env ?? process.env,
    });
    if (child.pid === undefined) throw new Error(`could not start ${binary}`);
    if (options.owned) {
      installExitHooks();
      owned.set(child.pid, child);
      child.once('exit', () => owned.delete(child.pid!));
    } else {
      child.unref();
    }
    return child;
  } finally {
    closeSync(log);
  }
}

/** SIGTERM, then SIGKILL after the grace period; resolves once the process is gone. */
export async function stopProcess(pid: number, graceMs = 10_000): Promise<void> {
  killQuietly(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) {
      killQuietly(pid, 'SIGKILL');
      await waitFor(() => !isAlive(pid), 5_000, `process ${pid} to exit after SIGKILL`);
      break;
    }
    await sleep(50);
  }
  owned.delete(pid);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns a truthy value or the deadline passes. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  timeoutMs: number,
  what: string,
  describeLastState?: () => string | Promise<string>,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const state = describeLastState ? `; last state: ${await describeLastState()}` : '';
      const cause = lastError instanceof Error ? `; last error: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}${state}`);
    }
    await sleep(100);
  }
}
