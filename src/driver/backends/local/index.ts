import path from 'node:path';

import { packageVersion } from '../../../util/package.js';
import type { DiskBackend } from '../../backend.js';
import type { BackendOptions } from '../registry.js';
import { LocalBackend } from './backend.js';
import { CAP_SYS_RESOURCE, hasCapability, runCommand } from './system.js';

/** `--backend=local`: needs --node-id and --root; --capacity-bytes is optional. */
export async function createLocalBackend(options: BackendOptions): Promise<DiskBackend> {
  const root = options.flags.root;
  if (!root) throw new Error('the local backend needs --root=<directory for disk images>');
  if (!options.nodeId) throw new Error("the local backend needs --node-id=<this node's name>");
  let capacityBytes: number | undefined;
  const capacity = options.flags['capacity-bytes'];
  if (capacity !== undefined) {
    capacityBytes = Number(capacity);
    if (!Number.isSafeInteger(capacityBytes) || capacityBytes <= 0) {
      throw new Error(`--capacity-bytes must be a positive number of bytes (got "${capacity}")`);
    }
  }
  const kubeletDir = options.flags['kubelet-dir'];
  if (kubeletDir !== undefined && !path.isAbsolute(kubeletDir)) {
    throw new Error(`--kubelet-dir must be an absolute path (got "${kubeletDir}")`);
  }
  return LocalBackend.open({
    root,
    nodeId: options.nodeId,
    capacityBytes,
    kubeletDir,
    onlineResize: hasCapability(CAP_SYS_RESOURCE),
    vendorVersion: packageVersion(),
    run: runCommand,
    logger: options.logger,
  });
}
