import type { Logger } from '../../observability/logger.js';
import type { SnapbackMetrics } from '../../observability/metrics.js';
import type { DiskBackend } from '../backend.js';
import { alicloudFlags } from './alicloud/flags.js';

/** What `snapback driver` hands to the backend named by `--backend`. */
export interface BackendOptions {
  /** `--node-id`; backends with a node side need it, controller-only ones may ignore it. */
  nodeId: string | undefined;
  /**
   * The backend's own flags, without the leading dashes: `--root=/var/lib/x` becomes
   * { root: '/var/lib/x' }. Only names listed in the factory's `flags` arrive here.
   */
  flags: Readonly<Record<string, string>>;
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** Where the backend counts its cloud API calls; absent when nothing serves /metrics. */
  metrics?: SnapbackMetrics;
}

export interface BackendFactory {
  summary: string;
  /** Flag name (without dashes) -> help text. The CLI rejects any other flag. */
  flags: Readonly<Record<string, string>>;
  /** Throws an Error whose message says which flag or variable to fix. */
  create(options: BackendOptions): Promise<DiskBackend>;
}

/**
 * Backends by `--backend` name. Each backend module is imported (dynamic `import()`) only when
 * chosen, so the local backend never loads a cloud SDK: the alicloud one costs about 70 MiB of
 * resident memory (bench/idle). Keep static imports here to dependency-free flag tables.
 */
export const backendFactories: Record<string, BackendFactory> = {
  local: {
    summary: 'sparse disk images under --root, ext4 on loop devices (driver local.snapback.dev)',
    flags: {
      root: 'directory holding the disk and snapshot images (required)',
      'capacity-bytes':
        'bytes all disks together may be provisioned with (default: size of the file system of --root)',
      'kubelet-dir':
        "kubelet's directory; staging and target paths outside it are refused (default: /var/lib/kubelet)",
    },
    async create(options) {
      const { createLocalBackend } = await import('./local/index.js');
      return createLocalBackend(options);
    },
  },
  alicloud: {
    summary: 'Alibaba Cloud ECS disks and snapshots (driver diskplugin.csi.alibabacloud.com)',
    flags: alicloudFlags,
    async create(options) {
      const { createAlicloudBackend } = await import('./alicloud/index.js');
      return createAlicloudBackend(options);
    },
  },
};
