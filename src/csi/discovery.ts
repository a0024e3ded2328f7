/**
 * Driver discovery: what a CSI driver says about itself at startup, asked as upstream's
 * sidecars ask it (csi-lib-utils' ProbeForever, then GetPluginInfo and the capabilities).
 */
import type { CallOptions } from './client.js';
import type { ControllerGetCapabilitiesRequest } from '../gen/csi/csi/v1/ControllerGetCapabilitiesRequest.js';
import type { ControllerGetCapabilitiesResponse__Output } from '../gen/csi/csi/v1/ControllerGetCapabilitiesResponse.js';
import type { GetPluginCapabilitiesRequest } from '../gen/csi/csi/v1/GetPluginCapabilitiesRequest.js';
import type { GetPluginCapabilitiesResponse__Output } from '../gen/csi/csi/v1/GetPluginCapabilitiesResponse.js';
import type { GetPluginInfoRequest } from '../gen/csi/csi/v1/GetPluginInfoRequest.js';
import type { GetPluginInfoResponse__Output } from '../gen/csi/csi/v1/GetPluginInfoResponse.js';
import type { ProbeRequest } from '../gen/csi/csi/v1/ProbeRequest.js';
import type { ProbeResponse__Output } from '../gen/csi/csi/v1/ProbeResponse.js';
import { errorMessage, type Logger } from '../observability/logger.js';

/** The capabilities the provisioner and the snapshotter act on. */
export interface DiscoveredCapabilities {
  createDeleteVolume: boolean;
  createDeleteSnapshot: boolean;
  /** VOLUME_ACCESSIBILITY_CONSTRAINTS: volumes carry topology. */
  topology: boolean;
  singleNodeMultiWriter: boolean;
}

/** What the driver said about itself at startup. */
export interface DriverInfo {
  name: string;
  capabilities: DiscoveredCapabilities;
  listSnapshots: boolean;
}

/** The calls driver discovery makes (a CsiClient provides them). */
export interface DiscoveryCsi {
  identity: {
    probe(request: ProbeRequest, options?: CallOptions): Promise<ProbeResponse__Output>;
    getPluginInfo(
      request: GetPluginInfoRequest,
      options?: CallOptions,
    ): Promise<GetPluginInfoResponse__Output>;
    getPluginCapabilities(
      request: GetPluginCapabilitiesRequest,
      options?: CallOptions,
    ): Promise<GetPluginCapabilitiesResponse__Output>;
  };
  controller: {
    controllerGetCapabilities(
      request: ControllerGetCapabilitiesRequest,
      options?: CallOptions,
    ): Promise<ControllerGetCapabilitiesResponse__Output>;
  };
  waitForReady(timeoutMs: number): Promise<void>;
}

/**
 * Waits for the driver (Probe until ready, as csi-lib-utils' ProbeForever), then reads its
 * name and capabilities.
 */
export async function discoverDriver(
  csi: DiscoveryCsi,
  timeoutMs: number,
  logger: Logger,
): Promise<DriverInfo> {
  await probeUntilReady(csi, timeoutMs, logger);
  const info = await csi.identity.getPluginInfo({}, { timeoutMs });
  const plugin = await csi.identity.getPluginCapabilities({}, { timeoutMs });
  const pluginCaps = new Set(plugin.capabilities.map((c) => c.service?.type));
  const controller = await csi.controller.controllerGetCapabilities({}, { timeoutMs });
  const caps = new Set(controller.capabilities.map((c) => c.rpc?.type));
  return {
    name: info.name,
    listSnapshots: caps.has('LIST_SNAPSHOTS'),
    capabilities: {
      createDeleteVolume: pluginCaps.has('CONTROLLER_SERVICE') && caps.has('CREATE_DELETE_VOLUME'),
      createDeleteSnapshot: caps.has('CREATE_DELETE_SNAPSHOT'),
      topology: pluginCaps.has('VOLUME_ACCESSIBILITY_CONSTRAINTS'),
      singleNodeMultiWriter: caps.has('SINGLE_NODE_MULTI_WRITER'),
    },
  };
}

/** Probe, once a second, until the driver is ready; fails after a minute (at least) of errors. */
async function probeUntilReady(
  csi: DiscoveryCsi,
  timeoutMs: number,
  logger: Logger,
): Promise<void> {
  const deadline = Date.now() + Math.max(timeoutMs, 60_000);
  for (;;) {
    try {
      await csi.waitForReady(Math.min(timeoutMs, 10_000));
      const probe = await csi.identity.probe({}, { timeoutMs });
      if (probe.ready?.value !== false) return;
      logger.info('CSI driver not ready yet');
    } catch (error) {
      if (Date.now() > deadline) {
        throw new Error(`the CSI driver did not answer Probe: ${errorMessage(error)}`, {
          cause: error,
        });
      }
      logger.info('waiting for the CSI driver', { error: errorMessage(error) });
    }
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}
