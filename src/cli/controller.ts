/**
 * `snapback controller`: the controllers of one snapback deployment, leader-elected as one
 * unit. The embedded snapshot stack (snapshot controller, CSI snapshotter, CSI provisioner)
 * runs beside them unless switched off; the sidecar and the provisioner drive the CSI driver
 * at --csi-address. `snapback all-in-one` (./all-in-one.ts) adds the driver itself.
 */
import type { ManagerExit } from '../kube/index.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { parseCommandFlags } from './flags.js';
import { controllerFlags, stackOptions, stackUsage } from './stack-options.js';
import { startStack } from './stack.js';

export { controllerFlags, stackOptions, stackUsage } from './stack-options.js';
export { startStack, type Parts, type Stack, type StackOptions } from './stack.js';

/**
 * Runs until SIGTERM/SIGINT (exit 0, after the reconciles in flight finish and the lease is
 * handed over) or until leadership is lost (exit 1, so the pod restarts as a candidate).
 */
export async function runUntilSignal(
  stack: { exit: Promise<ManagerExit>; stop(): Promise<void> },
  logger: Logger,
  cleanup: () => Promise<void> = async () => undefined,
): Promise<number> {
  const signal = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  const outcome = await Promise.race([
    signal.then((name) => ({ signal: name })),
    stack.exit.then((exit) => ({ exit })),
  ]);
  if ('signal' in outcome) logger.info('stopping on signal', { signal: outcome.signal });
  else logger.error('leadership lost; exiting so that a new candidate takes over');
  await stack.stop();
  await cleanup();
  return 'signal' in outcome ? 0 : 1;
}

export const controllerCommand = {
  async run(args: string[]): Promise<number> {
    const { help, values } = parseCommandFlags(controllerFlags, args);
    if (help) {
      console.log(stackUsage('controller'));
      return 0;
    }
    const logger = createLogger({ controller: 'snapback' });
    const options = stackOptions(values, {}, logger);
    const stack = await startStack(options);
    logger.info('snapback controller started', {
      parts: Object.entries(options.parts)
        .filter(([, on]) => on)
        .map(([part]) => part)
        .join(','),
      leaderElection: options.leaderElection?.identity ?? 'off',
    });
    return runUntilSignal(stack, logger);
  },
};
