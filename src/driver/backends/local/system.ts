import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Runs a program and returns its stdout; rejects with its stderr in the message. */
export type CommandRunner = (program: string, args: string[]) => Promise<string>;

export class CommandError extends Error {
  override readonly name = 'CommandError';

  constructor(
    readonly program: string,
    readonly args: string[],
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(`${program} ${args.join(' ')} failed (exit ${exitCode ?? 'signal'}): ${stderr.trim()}`);
  }
}

export const runCommand: CommandRunner = (program, args) =>
  new Promise((resolve, reject) => {
    execFile(program, args, { maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (!error) {
        resolve(stdout);
        return;
      }
      const code = typeof error.code === 'number' ? error.code : null;
      if (typeof error.code === 'string') {
        reject(new Error(`cannot run ${program}: ${error.message}`));
        return;
      }
      reject(new CommandError(program, args, code, stderr || error.message));
    });
  });

/** The capability ext4 needs to be grown while mounted. */
export const CAP_SYS_RESOURCE = 24;

/** Whether this process holds a Linux capability (CapEff in /proc/self/status). */
export function hasCapability(bit: number): boolean {
  try {
    const hex = /^CapEff:\s+([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    return hex !== undefined && (BigInt(`0x${hex}`) & (1n << BigInt(bit))) !== 0n;
  } catch {
    return false;
  }
}
