/**
 * `snapback all-in-one`: the disk driver and every controller in one process, for laptops,
 * CI and single-node clusters. The driver serves its CSI socket at --endpoint (by default
 * <root>/csi.sock), so a test or a person can stage and publish volumes as kubelet would; the
 * embedded snapshotter and provisioner drive that same socket.
 */
import path from 'node:path';
import { csiProtoEnv } from '../csi/proto.js';
import { backendFactories } from '../driver/backends/registry.js';
import { startDriver, type DriverHandle } from '../driver/driver.js';
import { createLogger } from '../observability/logger.js';
import { runUntilSignal } from './controller.js';
import { backendFlags, chosenBackend } from './driver.js';
import { parseCommandFlags, type FlagTable } from './flags.js';
import { controllerFlags, stackOptions, stackUsage } from './stack-options.js';
import { startStack } from './stack.js';

const ownFlags: FlagTable = {
  backend: { help: `disk backend: ${Object.keys(backendFactories).join(' | ')} (required)` },
  'node-id': { help: "this node's name, reported by NodeGetInfo (required)" },
  endpoint: {
    help: 'where the driver serves CSI, unix:///path/csi.sock (default: <root>/csi.sock)',
  },
};

/** The flags of `snapback all-in-one`: its own, every backend's and the controllers'. */
export const allInOneFlags: FlagTable = { ...ownFlags, ...backendFlags(), ...controllerFlags };

export interface AllInOneOptions {
  backendName: string;
  nodeId: string;
  endpoint: string;
  backendFlags: Record<string, string>;
  stackFlags: Record<string, string>;
}

/** Splits the flags between the driver, its backend and the controllers. */
export function allInOneOptions(flags: Record<string, string>): AllInOneOptions {
  const { backendName, factory } = chosenBackend(flags);
  const nodeId = flags['node-id'];
  if (!nodeId) throw new Error('--node-id is required (the name NodeGetInfo reports)');
  const backendValues: Record<string, string> = {};
  const stackFlags: Record<string, string> = {};
  for (const [name, value] of Object.entries(flags)) {
    if (name in ownFlags) continue;
    if (name in factory.flags) backendValues[name] = value;
    else stackFlags[name] = value;
  }
  if (stackFlags['csi-address'] !== undefined) {
    throw new Error('all-in-one drives its own driver: use --endpoint instead of --csi-address');
  }
  const root = backendValues.root;
  const endpoint =
    flags.endpoint ?? (root ? `unix://${path.resolve(root, 'csi.sock')}` : undefined);
  if (!endpoint) throw new Error('--endpoint is required when the backend has no --root');
  return { backendName, nodeId, endpoint, backendFlags: backendValues, stackFlags };
}

function allInOneUsage(): string {
  // the controllers drive this process's own driver
  const shown = Object.fromEntries(
    Object.entries(allInOneFlags).filter(([name]) => name !== 'csi-address'),
  );
  return [
    stackUsage('all-in-one', shown),
    '',
    `csi.proto: --csi-proto, else $${csiProtoEnv}, else dist/csi.proto`,
  ].join('\n');
}

export const allInOneCommand = {
  async run(args: string[]): Promise<number> {
    const { help, values } = parseCommandFlags(allInOneFlags, args);
    if (help) {
      console.log(allInOneUsage());
      return 0;
    }
    const options = allInOneOptions(values);
    const logger = createLogger({ controller: 'snapback' });
    const stack = stackOptions(options.stackFlags, { csiEndpoint: options.endpoint }, logger);

    const backend = await backendFactories[options.backendName]!.create({
      nodeId: options.nodeId,
      flags: options.backendFlags,
      env: process.env,
      logger,
    });
    // the driver serves regardless of leadership: a standby replica's node side stays usable
    let driver: DriverHandle;
    try {
      driver = await startDriver({
        backend,
        endpoint: options.endpoint,
        nodeId: options.nodeId,
        protoPath: stack.csiProto,
        logger,
      });
    } catch (error) {
      await backend.close?.();
      throw error;
    }
    logger.info('CSI driver serving', { endpoint: options.endpoint, driver: driver.driverName });
    let running;
    try {
      running = await startStack(stack);
    } catch (error) {
      await driver.stop();
      throw error;
    }
    return runUntilSignal(running, logger, () => driver.stop());
  },
};
