import type { BackendOptions } from '../registry.js';
import { AlicloudBackend } from './backend.js';
import { parseAlicloudConfig } from './config.js';
import { checkCredential, credentialFor } from './credentials.js';
import { SdkEcsApi } from './sdk-client.js';
import { RateLimitedEcsApi } from './throttle.js';
import { packageVersion } from '../../../util/package.js';

/**
 * `snapback driver --backend=alicloud`: validates the flags, resolves credentials, checks
 * that ECS accepts them, and returns the backend. Every failure names what to fix.
 */
export async function createAlicloudBackend(options: BackendOptions): Promise<AlicloudBackend> {
  const config = parseAlicloudConfig(options.flags, options.env);
  const logger = options.logger.child({ backend: 'alicloud' });
  const credential = credentialFor(config.credentials, options.env);
  await checkCredential(credential, config.credentials.source, config.requestTimeoutMs);
  const api = new RateLimitedEcsApi(
    new SdkEcsApi({
      regionId: config.region,
      endpoint: config.ecsEndpoint,
      protocol: config.ecsProtocol,
      network: config.ecsNetwork,
      credential,
      requestTimeoutMs: config.requestTimeoutMs,
    }),
    {
      limits: config.rateLimits,
      logger,
      onCall: (api, outcome) => options.metrics?.ecsApiRequests.inc({ api, outcome }),
    },
  );
  const backend = new AlicloudBackend({
    api,
    regionId: config.region,
    defaultZone: config.zone,
    clusterId: config.clusterId,
    groupSnapshotLimits: config.groupSnapshotLimits,
    vendorVersion: packageVersion(),
    logger,
    onClose: () => api.close(),
  });
  try {
    await backend.verifyAccess();
  } catch (error) {
    await backend.close();
    throw error;
  }
  logger.info('alicloud backend ready', {
    region: config.region,
    zone: config.zone,
    endpoint: config.ecsEndpoint ?? 'sdk default',
    protocol: config.ecsProtocol,
    credentials: config.credentials.source,
  });
  return backend;
}
