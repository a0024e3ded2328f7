import { startHealthServer, ReadinessGate } from '../observability/health.js';
import { createLogger } from '../observability/logger.js';
import { createMetrics } from '../observability/metrics.js';
import { csiProtoEnv } from '../csi/proto.js';
import { backendFactories, type BackendFactory } from '../driver/backends/registry.js';
import { startDriver } from '../driver/driver.js';
import { flagLines, parseCommandFlags, stringFlags, type FlagTable } from './flags.js';

const ownFlags: FlagTable = stringFlags({
  backend: `disk backend: ${Object.keys(backendFactories).join(' | ')} (required)`,
  endpoint: 'CSI socket, unix:///path/csi.sock (required)',
  'node-id': "this node's name, reported by NodeGetInfo (required to serve the Node service)",
  services: 'which CSI services to serve: controller,node (default: all the backend offers)',
  'csi-proto': `path of csi.proto (default: $${csiProtoEnv}, else dist/csi.proto)`,
  'http-endpoint': 'host:port serving /healthz, /readyz and /metrics (default: none)',
});

/** The backend `--backend` names; throws naming the known ones when it is missing or unknown. */
export function chosenBackend(flags: Record<string, string>): {
  backendName: string;
  factory: BackendFactory;
} {
  const backendName = flags.backend;
  const known = Object.keys(backendFactories).join(', ');
  if (!backendName) throw new Error(`--backend is required (one of: ${known})`);
  const factory = backendFactories[backendName];
  if (!factory) throw new Error(`unknown backend "${backendName}" (known: ${known})`);
  return { backendName, factory };
}

/** The flags of every backend; `--backend` picks whose are allowed. */
export function backendFlags(): FlagTable {
  return stringFlags(
    Object.fromEntries(
      Object.values(backendFactories).flatMap((factory) => Object.entries(factory.flags)),
    ),
  );
}

/** The flags of `snapback driver`: its own and every backend's. */
export const driverFlags: FlagTable = { ...ownFlags, ...backendFlags() };

export interface DriverCommandOptions {
  backendName: string;
  endpoint: string;
  nodeId: string | undefined;
  services: { controller: boolean; node: boolean | undefined };
  csiProto: string | undefined;
  httpEndpoint: string | undefined;
  backendFlags: Record<string, string>;
}

/** Splits and checks the flags of `snapback driver`; throws with a message naming the fix. */
export function driverOptions(flags: Record<string, string>): DriverCommandOptions {
  const { backendName, factory } = chosenBackend(flags);
  if (!flags.endpoint) throw new Error('--endpoint is required (unix:///path/csi.sock)');
  const backendFlags: Record<string, string> = {};
  for (const [name, value] of Object.entries(flags)) {
    if (name in ownFlags) continue;
    if (!(name in factory.flags)) {
      const known = [...Object.keys(ownFlags), ...Object.keys(factory.flags)];
      throw new Error(
        `unknown flag --${name} for backend ${backendName} (known: --${known.join(', --')})`,
      );
    }
    backendFlags[name] = value;
  }
  let services: DriverCommandOptions['services'] = { controller: true, node: undefined };
  if (flags.services !== undefined) {
    const list = flags.services.split(',').map((s) => s.trim());
    const unknown = list.filter((s) => s !== 'controller' && s !== 'node');
    if (unknown.length > 0 || list.length === 0) {
      throw new Error(`--services takes controller, node or both (got "${flags.services}")`);
    }
    services = { controller: list.includes('controller'), node: list.includes('node') };
  }
  return {
    backendName,
    endpoint: flags.endpoint,
    nodeId: flags['node-id'],
    services,
    csiProto: flags['csi-proto'],
    httpEndpoint: flags['http-endpoint'],
    backendFlags,
  };
}

export function driverUsage(): string {
  const lines = [
    'usage: snapback driver --backend=<name> --endpoint=unix:///path/csi.sock [flags]',
    '',
  ];
  lines.push(...flagLines(ownFlags, 16));
  for (const [backend, factory] of Object.entries(backendFactories)) {
    lines.push('', `backend ${backend}: ${factory.summary}`);
    for (const [name, help] of Object.entries(factory.flags)) {
      lines.push(`  --${name.padEnd(16)} ${help}`);
    }
  }
  return lines.join('\n');
}

/** `snapback driver`: serves one backend as a CSI driver until SIGTERM or SIGINT. */
export const driverCommand = {
  async run(args: string[]): Promise<number> {
    const { help, values } = parseCommandFlags(driverFlags, args);
    if (help) {
      console.log(driverUsage());
      return 0;
    }
    const options = driverOptions(values);
    const logger = createLogger({ controller: 'driver' });
    const metrics = options.httpEndpoint ? createMetrics() : undefined;
    const serving = new ReadinessGate('csi-socket', 'the CSI socket is not served yet');
    const health = options.httpEndpoint
      ? await startHealthServer({
          address: options.httpEndpoint,
          registry: metrics?.registry,
          readiness: [serving],
          logger,
        })
      : undefined;
    const backend = await backendFactories[options.backendName]!.create({
      nodeId: options.nodeId,
      flags: options.backendFlags,
      env: process.env,
      logger,
      metrics,
    });
    const driver = await startDriver({
      backend,
      endpoint: options.endpoint,
      nodeId: options.nodeId,
      protoPath: options.csiProto,
      controller: options.services.controller,
      node: options.services.node,
      logger,
    });
    serving.markReady(options.endpoint);
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    logger.info('stopping on signal', { signal });
    await driver.stop();
    await health?.close();
    return 0;
  },
};
