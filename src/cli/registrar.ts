/**
 * `snapback registrar`: registers the node plugin with kubelet, in place of the upstream
 * csi-node-driver-registrar and with its flags. It asks the CSI driver for its name, serves
 * kubelet's plugin registration API on `<plugin-registration-path>/<driver>-reg.sock`, and
 * exits non-zero when kubelet reports a failed registration, so that kubelet restarts it.
 *
 * It loads neither the Kubernetes client nor the driver's backends: it is a sidecar on every
 * node, and its memory counts once per node.
 */
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { connectCsi } from '../csi/client.js';
import { socketPath } from '../csi/endpoint.js';
import { csiProtoEnv, resolveCsiProto } from '../csi/proto.js';
import {
  loadRegistration,
  registrationProtoEnv,
  resolveRegistrationProto,
  serveRegistration,
  type RegistrationStatus,
} from '../csi/registration.js';
import { startHealthServer, type ReadinessCheck } from '../observability/health.js';
import { createLogger, errorMessage, type Logger } from '../observability/logger.js';
import { parseDuration } from '../util/duration.js';
import { assertKnownFlags, flagLines, parseCommandFlags, stringFlags } from './flags.js';

const registrarHelp = {
  'csi-address':
    "the CSI driver's socket in this container, e.g. /csi/csi.sock (unix:// optional; required)",
  'kubelet-registration-path':
    "the driver's socket as kubelet on the node dials it, e.g. " +
    '/var/lib/kubelet/plugins/<driver>/csi.sock (required)',
  'plugin-registration-path':
    "kubelet's plugin registration directory as mounted here (default /registration)",
  'http-endpoint': 'host:port serving /healthz (default: none)',
  timeout: 'how long a call to the CSI driver may take (default 1s)',
  'csi-proto': `path of csi.proto (default: $${csiProtoEnv}, else dist/csi.proto)`,
  'registration-proto': `path of pluginregistration.proto (default: $${registrationProtoEnv}, else dist/pluginregistration.proto)`,
};

/** The flags of `snapback registrar`: upstream csi-node-driver-registrar's. */
export const registrarFlags = stringFlags(registrarHelp);

/** The versions of kubelet's plugin registration API this registrar speaks. */
const supportedVersions = ['1.0.0'];

/** Between GetPluginInfo attempts while the driver is not up yet. */
const retryStartMs = 200;
const retryMaxMs = 5_000;

export interface RegistrarOptions {
  /** unix:///path/csi.sock */
  csiAddress: string;
  /** A bare absolute path: kubelet dials it as a unix socket path. */
  kubeletRegistrationPath: string;
  pluginRegistrationPath: string;
  httpEndpoint: string | undefined;
  timeoutMs: number;
  csiProto: string | undefined;
  registrationProto: string | undefined;
}

/** Checks the flags of `snapback registrar`; throws with a message naming the fix. */
export function registrarOptions(flags: Record<string, string>): RegistrarOptions {
  assertKnownFlags(registrarFlags, flags);
  const csiAddress = flags['csi-address'];
  if (!csiAddress) throw new Error(`--csi-address is required (${registrarHelp['csi-address']})`);
  const kubeletPath = flags['kubelet-registration-path'];
  if (!kubeletPath) {
    throw new Error(
      `--kubelet-registration-path is required (${registrarHelp['kubelet-registration-path']})`,
    );
  }
  const pluginRegistrationPath = flags['plugin-registration-path'] ?? '/registration';
  if (!path.isAbsolute(pluginRegistrationPath)) {
    throw new Error(
      `--plugin-registration-path must be absolute (got "${pluginRegistrationPath}")`,
    );
  }
  const timeoutMs = parseDuration(flags.timeout ?? '1s', 'timeout');
  if (timeoutMs <= 0) throw new Error(`--timeout must be positive (got "${flags.timeout}")`);
  return {
    csiAddress: `unix://${socketPath(csiAddress)}`,
    kubeletRegistrationPath: socketPath(kubeletPath),
    pluginRegistrationPath: path.normalize(pluginRegistrationPath),
    httpEndpoint: flags['http-endpoint'],
    timeoutMs,
    csiProto: flags['csi-proto'],
    registrationProto: flags['registration-proto'],
  };
}

export function registrarUsage(): string {
  const lines = [
    'usage: snapback registrar --csi-address=/csi/csi.sock ' +
      '--kubelet-registration-path=/var/lib/kubelet/plugins/<driver>/csi.sock [flags]',
    '',
  ];
  return [...lines, ...flagLines(registrarFlags, 26)].join('\n');
}

/**
 * Runs `call` over a connection of its own. A long-lived channel would keep grpc-js's reconnect
 * backoff (up to two minutes) after the driver has been down for a while, and so keep failing
 * after the driver is back.
 */
async function withDriver<T>(
  address: string,
  protoPath: string,
  call: (client: ReturnType<typeof connectCsi>) => Promise<T>,
): Promise<T> {
  const client = connectCsi(address, { protoPath });
  try {
    return await call(client);
  } finally {
    client.close();
  }
}

/** grpc-js puts the time of the last connection attempt in its errors; the failure is the rest. */
export const withoutTimestamps = (message: string): string =>
  message.replace(/ ?\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z\)/g, '');

/**
 * The driver's name from GetPluginInfo, retried with backoff until the driver answers; each
 * distinct failure is logged once. Undefined when `signal` aborts first.
 */
async function waitForDriverName(
  options: RegistrarOptions,
  csiProto: string,
  logger: Logger,
  signal: AbortSignal,
): Promise<string | undefined> {
  const logged = new Set<string>();
  for (let delayMs = retryStartMs; !signal.aborted; delayMs = Math.min(delayMs * 2, retryMaxMs)) {
    let name: string;
    try {
      const info = await withDriver(options.csiAddress, csiProto, (client) =>
        client.identity.getPluginInfo({}, { timeoutMs: options.timeoutMs }),
      );
      name = info.name;
    } catch (error) {
      const failure = errorMessage(error);
      const kind = withoutTimestamps(failure);
      if (!logged.has(kind)) {
        logged.add(kind);
        logger.warn('the CSI driver does not answer GetPluginInfo yet; retrying', {
          csiAddress: options.csiAddress,
          error: failure,
        });
      }
      await sleep(delayMs, undefined, { signal }).catch(() => undefined);
      continue;
    }
    if (!name || name.includes('/') || name === '.' || name === '..') {
      throw new Error(
        `the CSI driver at ${options.csiAddress} reports the name "${name}", which cannot name a registration socket`,
      );
    }
    return name;
  }
  return undefined;
}

function registrarChecks(
  options: RegistrarOptions,
  csiProto: string,
  registrationSocket: () => string | undefined,
): ReadinessCheck[] {
  return [
    {
      name: 'registration-socket',
      async check() {
        const socket = registrationSocket();
        if (!socket) {
          return { ready: false, message: "not served yet: waiting for the CSI driver's name" };
        }
        const stats = await lstat(socket).catch(() => undefined);
        return stats?.isSocket()
          ? { ready: true, message: socket }
          : { ready: false, message: `${socket} is missing; kubelet cannot find the plugin` };
      },
    },
    {
      name: 'csi-driver',
      async check() {
        try {
          await withDriver(options.csiAddress, csiProto, (client) =>
            client.identity.probe({}, { timeoutMs: options.timeoutMs }),
          );
          return { ready: true, message: `${options.csiAddress} answers Probe` };
        } catch (error) {
          return {
            ready: false,
            message: `${options.csiAddress} does not answer Probe: ${errorMessage(error)}`,
          };
        }
      },
    },
  ];
}

type Outcome = { signal: NodeJS.Signals } | { registrationError: string };

/** How the registrar's run ends: a signal, or kubelet reporting a failed registration. */
interface Ending {
  finished: Promise<Outcome>;
  finish(outcome: Outcome): void;
  /** Aborts on SIGTERM or SIGINT. */
  signal: AbortSignal;
  /** Stops listening for the signals. */
  dispose(): void;
}

function untilSignalOrFailure(): Ending {
  const stop = new AbortController();
  let finish!: (outcome: Outcome) => void;
  const finished = new Promise<Outcome>((resolve) => (finish = resolve));
  const onSignal = (signal: NodeJS.Signals) => {
    finish({ signal });
    stop.abort();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  const dispose = () => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  };
  return { finished, finish, signal: stop.signal, dispose };
}

/** Serves kubelet's registration API for `driverName` until stopped. */
async function register(
  options: RegistrarOptions,
  registrationProto: string,
  driverName: string,
  ending: Ending,
  logger: Logger,
) {
  const socket = path.join(options.pluginRegistrationPath, `${driverName}-reg.sock`);
  const onStatus = (status: RegistrationStatus) => {
    if (status.plugin_registered) {
      logger.info('kubelet registered the plugin', { driver: driverName });
    } else {
      logger.error('kubelet failed to register the plugin; exiting so it restarts us', {
        driver: driverName,
        error: status.error,
      });
      ending.finish({ registrationError: status.error });
    }
  };
  const server = await serveRegistration({
    socket,
    protoPath: registrationProto,
    info: {
      type: 'CSIPlugin',
      name: driverName,
      endpoint: options.kubeletRegistrationPath,
      supported_versions: supportedVersions,
    },
    onStatus,
  });
  logger.info('serving plugin registration for kubelet', {
    driver: driverName,
    socket,
    endpoint: options.kubeletRegistrationPath,
  });
  return { server, socket };
}

export const registrarCommand = {
  async run(args: string[]): Promise<number> {
    const { help, values } = parseCommandFlags(registrarFlags, args);
    if (help) {
      console.log(registrarUsage());
      return 0;
    }
    const options = registrarOptions(values);
    const csiProto = resolveCsiProto(options.csiProto);
    const registrationProto = resolveRegistrationProto(options.registrationProto);
    // a file that is not the registration API fails now, not once the driver has answered
    loadRegistration(registrationProto);
    const logger = createLogger({ component: 'registrar' });
    const ending = untilSignalOrFailure();

    let registrationSocket: string | undefined;
    const health = options.httpEndpoint
      ? await startHealthServer({
          address: options.httpEndpoint,
          liveness: registrarChecks(options, csiProto, () => registrationSocket),
          // the Probe's own deadline answers first, with the driver's error
          checkTimeoutMs: options.timeoutMs + 500,
          logger,
        })
      : undefined;
    let server: Awaited<ReturnType<typeof serveRegistration>> | undefined;
    try {
      const driverName = await waitForDriverName(options, csiProto, logger, ending.signal);
      if (driverName !== undefined) {
        const registration = await register(options, registrationProto, driverName, ending, logger);
        server = registration.server;
        registrationSocket = registration.socket;
      }
      const outcome = await ending.finished;
      if ('signal' in outcome) logger.info('stopping on signal', { signal: outcome.signal });
      return 'signal' in outcome ? 0 : 1;
    } finally {
      ending.dispose();
      await server?.stop();
      await health?.close();
    }
  },
};
