import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';

/** A failed build step: `make image` prints it as one line naming the step and its log. */
export class StepError extends Error {
  constructor(
    readonly step: string,
    readonly reason: string,
    readonly logFile?: string,
  ) {
    super(`${step} failed: ${reason}${logFile ? ` (log: ${logFile})` : ''}`);
  }
}

/** The last line of `logFile` that matches `pattern`, for a failure's one-line reason. */
export function lastMatchingLine(logFile: string, pattern: RegExp): string | undefined {
  try {
    return readFileSync(logFile, 'utf8')
      .split('\n')
      .filter((line) => pattern.test(line))
      .at(-1)
      ?.trim();
  } catch {
    return undefined;
  }
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Picks the line of the log that explains a failure (default: the last non-empty line). */
  errorLine?: RegExp;
}

/** Runs a command with its output appended to `logFile`; a failure is a StepError. */
export async function runLogged(
  step: string,
  command: string,
  args: string[],
  logFile: string,
  options: RunOptions = {},
): Promise<void> {
  const log = openSync(logFile, 'a');
  let exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  try {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', log, log],
    });
    exit = new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
  } finally {
    closeSync(log);
  }
  let result: { code: number | null; signal: NodeJS.Signals | null };
  try {
    result = await exit;
  } catch (error) {
    throw new StepError(step, `cannot run ${command}: ${(error as Error).message}`, logFile);
  }
  if (result.code === 0) return;
  const how = result.signal ? `killed by ${result.signal}` : `exit ${result.code}`;
  const line = lastMatchingLine(logFile, options.errorLine ?? /\S/);
  throw new StepError(step, `${command} ${how}${line ? `: ${line}` : ''}`, logFile);
}

/** Whether a process (a writer that left a partial file behind) is still running. */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
