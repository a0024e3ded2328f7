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
import { runUntilSignal, stackOptions, stackUsage, startStack } from './controller.js';
import { parseFlags } from './driver.js';

const ownFlags: Record<string, string> = {
  backend: `disk backend: ${Object.keys(backendFactories).join(' | ')} (required)`,
  'node-id': "this node's name, reported by NodeGetInfo (required)",
  endpoint: 'where the driver serves CSI, unix:///path/csi.sock (default: <root>/csi.sock)',
};

export interface AllInOneOptions {
  backendName: string;
  nodeId: string;
  endpoint: string;
  backendFlags: Record<string, string>;
  stackFlags: Record<string, string>;
}

/** Splits the flags between the driver, its backend and the controllers. */
export function allInOneOptions(flags: Record<string, string>): AllInOneOptions {
  const backendName = flags.backend;
  if (!backendName) throw new Error(`--backend is required (${ownFlags.backend})`);
  const factory = backendFactories[backendName];
  if (!factory) {
    throw new Error(
      `unknown backend "${backendName}" (known: ${Object.keys(backendFactories).join(', ')})`,
    );
  }
  const nodeId = flags['node-id'];
  if (!nodeId) throw new Error('--node-id is required (the name NodeGetInfo reports)');
  const backendFlags: Record<string, string> = {};
  const stackFlags: Record<string, string> = {};
  for (const [name, value] of Object.entries(flags)) {
    if (name in ownFlags) continue;
    if (name in factory.flags) backendFlags[name] = value;
    else stackFlags[name] = value;
  }
  if (stackFlags['csi-address'] !== undefined) {
    throw new Error('all-in-one drives its own driver: use --endpoint instead of --csi-address');
  }
  const root = backendFlags.root;
  const endpoint =
    flags.endpoint ?? (root ? `unix://${path.resolve(root, 'csi.sock')}` : undefined);
  if (!endpoint) throw new Error('--endpoint is required when the backend has no --root');
  return { backendName, nodeId, endpoint, backendFlags, stackFlags };
}

export const allInOneCommand = {
  async run(args: string[]): Promise<number> {
    if (args.includes('--help') || args.includes('-h')) {
      const backendHelp = Object.fromEntries(
        Object.values(backendFactories).flatMap((factory) => Object.entries(factory.flags)),
      );
      console.log(stackUsage('all-in-one', { ...ownFlags, ...backendHelp }, ['csi-address']));
      console.log(`\ncsi.proto: --csi-proto, else $${csiProtoEnv}, else dist/csi.proto`);
      return 0;
    }
    const options = allInOneOptions(parseFlags(args));
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
