import type { IdentityHandlers } from '../gen/csi/csi/v1/Identity.js';
import type { PluginCapability } from '../gen/csi/csi/v1/PluginCapability.js';
import type { AsyncHandlers } from '../csi/handlers.js';
import { supportsGroupSnapshots, type DiskBackend } from './backend.js';
import { isDiskError } from '../csi/errors.js';

/** What GetPluginCapabilities reports for this backend and the services being served. */
export function pluginCapabilities(
  backend: DiskBackend,
  servesController: boolean,
): PluginCapability[] {
  const capabilities: PluginCapability[] = [];
  if (servesController) capabilities.push({ service: { type: 'CONTROLLER_SERVICE' } });
  // The GroupController service is served beside the Controller service, when the backend
  // can snapshot volumes together.
  if (servesController && supportsGroupSnapshots(backend)) {
    capabilities.push({ service: { type: 'GROUP_CONTROLLER_SERVICE' } });
  }
  if (backend.topologyKeys.length > 0) {
    capabilities.push({ service: { type: 'VOLUME_ACCESSIBILITY_CONSTRAINTS' } });
  }
  if (backend.expandVolume) {
    capabilities.push({
      volume_expansion: { type: backend.capabilities.onlineExpansion ? 'ONLINE' : 'OFFLINE' },
    });
  }
  return capabilities;
}

export function identityService(
  backend: DiskBackend,
  servesController: boolean,
): AsyncHandlers<IdentityHandlers> {
  return {
    async GetPluginInfo() {
      return { name: backend.driverName, vendor_version: backend.vendorVersion, manifest: {} };
    },

    async GetPluginCapabilities() {
      return { capabilities: pluginCapabilities(backend, servesController) };
    },

    async Probe() {
      try {
        return { ready: { value: await backend.probe() } };
      } catch (error) {
        if (isDiskError(error, 'UNAVAILABLE')) return { ready: { value: false } };
        throw error;
      }
    },
  };
}
