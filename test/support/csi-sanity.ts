import { readFileSync } from 'node:fs';
import { isAlive, startProcess, stopProcess, waitFor } from './processes.js';
import { tool } from './tools.js';

export interface CsiSanityResult {
  ran: number;
  passed: number;
  failed: number;
  skipped: number;
  exitCode: number | null;
  /** The reasons printed for skipped specs (csi-sanity's own "in [..]" lines left out). */
  skipReasons: Set<string>;
  output: string;
}

/**
 * Runs the csi-sanity that tools/ built with `args`, logging to `logFile`, stops it by PID if
 * the deadline passes, and parses ginkgo's summary. Throws when no summary was printed.
 */
export async function runCsiSanity(args: string[], logFile: string): Promise<CsiSanityResult> {
  const sanity = startProcess(tool('CSI_SANITY'), [...args, '-ginkgo.v', '-ginkgo.no-color'], {
    logFile,
    owned: true,
  });
  const exitCode = new Promise<number | null>((resolve) => sanity.once('exit', resolve));
  const pid = sanity.pid!;
  try {
    await waitFor(
      () => !isAlive(pid),
      840_000,
      'csi-sanity to finish',
      () => readFileSync(logFile, 'utf8').slice(-3000),
    );
  } finally {
    if (isAlive(pid)) await stopProcess(pid);
  }
  const output = readFileSync(logFile, 'utf8');
  const summary =
    /Ran (\d+) of (\d+) Specs.*\n.*?(\d+) Passed \| (\d+) Failed \| (\d+) Pending \| (\d+) Skipped/.exec(
      output,
    );
  if (!summary) throw new Error(`no csi-sanity summary in:\n${output.slice(-3000)}`);
  const [, ran, , passed, failed, , skipped] = summary.map(Number) as number[];
  const skipReasons = new Set(
    [...output.matchAll(/^\s+\[SKIPPED\] (?!in \[)(.+)$/gm)].map((m) => m[1]!.trim()),
  );
  return {
    ran: ran!,
    passed: passed!,
    failed: failed!,
    skipped: skipped!,
    exitCode: await exitCode,
    skipReasons,
    output,
  };
}
