import { Writable } from 'node:stream';
import winston from 'winston';
import type { Logger } from '../../../src/observability/logger.js';
import {
  AlicloudBackend,
  type AlicloudBackendOptions,
} from '../../../src/driver/backends/alicloud/backend.js';
import { credentialFor } from '../../../src/driver/backends/alicloud/credentials.js';
import type { EcsApi } from '../../../src/driver/backends/alicloud/ecs.js';
import { SdkEcsApi } from '../../../src/driver/backends/alicloud/sdk-client.js';
import {
  RateLimitedEcsApi,
  type RetryPolicy,
} from '../../../src/driver/backends/alicloud/throttle.js';
import type { CreateSnapshotRequest, Snapshot } from '../../../src/driver/backend.js';
import { isDiskError } from '../../../src/csi/errors.js';
import { EcsEmulator, type EmulatorOptions } from '../../support/ecs-emulator/emulator.js';
import { sleep, waitFor } from '../../support/processes.js';

/** The alicloud backend wired as `snapback driver` wires it, against an ECS emulator. */

export const accessKeyId = 'LTAI-test-key-id';
export const accessKeySecret = 'test-secret-must-never-be-logged';
export const region = 'cn-hangzhou';
export const zone = 'cn-hangzhou-h';

/** A winston logger whose lines are kept, to check what the driver writes. */
export function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const logger = winston.createLogger({
    level: 'debug',
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Stream({ stream })],
  });
  return { logger, lines };
}

export async function startEmulator(options: Partial<EmulatorOptions> = {}): Promise<EcsEmulator> {
  return new EcsEmulator({
    credentials: { [accessKeyId]: { accessKeySecret } },
    regions: { [region]: [zone, 'cn-hangzhou-i'] },
    ...options,
  }).start();
}

export interface BackendSetup {
  backend: AlicloudBackend;
  logs: string[];
  close(): Promise<void>;
}

export function backendFor(
  emulator: EcsEmulator,
  options: {
    requestTimeoutMs?: number;
    retry?: RetryPolicy;
    wrap?: (api: EcsApi) => EcsApi;
    backend?: Partial<AlicloudBackendOptions>;
  } = {},
): BackendSetup {
  const { logger, lines } = capturingLogger();
  const sdk = new SdkEcsApi({
    regionId: region,
    endpoint: emulator.endpoint,
    protocol: 'http',
    network: 'public',
    credential: credentialFor(
      { source: 'env' },
      {
        ALIBABA_CLOUD_ACCESS_KEY_ID: accessKeyId,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET: accessKeySecret,
      },
    ),
    requestTimeoutMs: options.requestTimeoutMs ?? 5000,
  });
  const limited = new RateLimitedEcsApi(options.wrap ? options.wrap(sdk) : sdk, {
    logger,
    retry: options.retry,
  });
  const backend = new AlicloudBackend({
    api: limited,
    regionId: region,
    defaultZone: zone,
    clusterId: 'c-test',
    vendorVersion: 'test',
    logger,
    onClose: () => limited.close(),
    ...options.backend,
  });
  return { backend, logs: lines, close: () => backend.close() };
}

/** A disk that has been attached to an instance, so ECS will snapshot it. */
export function sourceDisk(emulator: EcsEmulator, sizeGiB = 20): string {
  const instance = emulator.model.addInstance(region, zone);
  return emulator.model.addDisk({
    regionId: region,
    zoneId: zone,
    sizeGiB,
    category: 'cloud_essd',
    instanceId: instance.id,
  }).id;
}

/**
 * What the CO does: repeat CreateSnapshot (same arguments) until the snapshot is ready,
 * retrying the codes that mean "later" and failing at once on any other.
 */
export async function createReadySnapshot(
  backend: AlicloudBackend,
  request: CreateSnapshotRequest,
  timeoutMs = 20_000,
): Promise<Snapshot> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    try {
      const snapshot = await backend.createSnapshot(request);
      if (snapshot.readyToUse) return snapshot;
      last = `${snapshot.id} not ready`;
    } catch (error) {
      if (!isDiskError(error, 'UNAVAILABLE') && !isDiskError(error, 'ABORTED')) throw error;
      last = (error as Error).message;
    }
    await sleep(200);
  }
  throw new Error(`snapshot ${request.name} not ready after ${timeoutMs} ms; last: ${last}`);
}

export function snapshotRequest(
  name: string,
  sourceVolumeId: string,
  forceDelete = false,
): CreateSnapshotRequest {
  return { name, sourceVolumeId, forceDelete, parameters: {}, metadata: {} };
}

export async function diskAvailable(emulator: EcsEmulator, diskId: string): Promise<void> {
  await waitFor(
    () => {
      const disk = emulator.model.disks.get(diskId);
      return disk !== undefined && emulator.model.diskStatus(disk) === 'Available';
    },
    10_000,
    `disk ${diskId} to be Available`,
    () => JSON.stringify(emulator.model.disks.get(diskId)),
  );
}
