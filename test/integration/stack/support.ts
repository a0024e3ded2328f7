/**
 * What the snapshot-stack integration tests share: the snapshot CRDs, snapback processes
 * (all-in-one, driver, controller) and the upstream peers started by PID, and a "kubelet" that
 * stages and publishes volumes through the driver's CSI socket.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { V1PersistentVolume, V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { connectCsi, type CallOptions } from '../../../src/csi/client.js';
import { grpcCodeOf } from '../../../src/csi/status.js';
import type { NodePublishVolumeRequest } from '../../../src/gen/csi/csi/v1/NodePublishVolumeRequest.js';
import type { NodeStageVolumeRequest } from '../../../src/gen/csi/csi/v1/NodeStageVolumeRequest.js';
import type { NodeUnpublishVolumeRequest } from '../../../src/gen/csi/csi/v1/NodeUnpublishVolumeRequest.js';
import type { NodeUnstageVolumeRequest } from '../../../src/gen/csi/csi/v1/NodeUnstageVolumeRequest.js';
import type { VolumeCapability } from '../../../src/gen/csi/csi/v1/VolumeCapability.js';
import {
  HttpKubeClient,
  PersistentVolumeClaims,
  PersistentVolumes,
  type KubeObject,
} from '../../../src/kube/index.js';
import type { ControlPlane } from '../../support/control-plane.js';
import { kubectl, kubeConfigFor } from '../../support/cluster.js';
import { startProcess, stopProcess, waitFor } from '../../support/processes.js';
import { repoRoot, tool } from '../../support/tools.js';

export const LOCAL_DRIVER = 'local.snapback.dev';

/** Applies crds/*.yaml whose name starts with `prefix` (idempotent); waits until they are served. */
async function applyCrds(controlPlane: ControlPlane, prefix: string): Promise<void> {
  const files = readdirSync(path.join(repoRoot, 'crds'))
    .filter((f) => f.startsWith(prefix) && f.endsWith('.yaml'))
    .map((f) => path.join(repoRoot, 'crds', f));
  if (files.length === 0) throw new Error(`no CRD in crds/ starts with "${prefix}"`);
  const args = files.flatMap((f) => ['-f', f]);
  await kubectl(controlPlane, ['apply', '--server-side', '--force-conflicts', ...args]);
  await kubectl(controlPlane, ['wait', '--for=condition=Established', '--timeout=60s', ...args]);
}

/** The snapshot.storage.k8s.io CRDs. */
export function installSnapshotCrds(controlPlane: ControlPlane): Promise<void> {
  return applyCrds(controlPlane, 'snapshot.storage.k8s.io_');
}

/** Every CRD in crds/: the controllers' caches sync only once all their kinds exist. */
export function installCrds(controlPlane: ControlPlane): Promise<void> {
  return applyCrds(controlPlane, '');
}

export function apiClient(controlPlane: ControlPlane): HttpKubeClient {
  return new HttpKubeClient(kubeConfigFor(controlPlane), { qps: 100, burst: 200 });
}

export interface Started {
  pid: number;
  logFile: string;
  child: ChildProcess;
  stop(): Promise<void>;
  log(): string;
}

function started(child: ChildProcess, logFile: string): Started {
  return {
    pid: child.pid!,
    child,
    logFile,
    stop: () => stopProcess(child.pid!, 20_000),
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
  };
}

/** Runs `snapback <args>` under tsx, owned by this test process (killed by PID at the end). */
export function startSnapback(
  controlPlane: ControlPlane,
  args: string[],
  logFile: string,
): Started {
  const child = startProcess(
    process.execPath,
    ['--import', 'tsx/esm', path.join(repoRoot, 'src/cli/main.ts'), ...args],
    {
      logFile,
      owned: true,
      env: {
        ...process.env,
        KUBECONFIG: controlPlane.kubeconfig,
        SNAPBACK_CSI_PROTO: tool('CSI_PROTO'),
        SNAPBACK_LOG_LEVEL: 'debug',
      },
    },
  );
  return started(child, logFile);
}

/** Starts upstream snapshot-controller or csi-snapshotter (built in tools/) by PID. */
export function startUpstream(
  binary: 'SNAPSHOT_CONTROLLER' | 'CSI_SNAPSHOTTER',
  args: string[],
  logFile: string,
): Started {
  const child = startProcess(tool(binary), args, { logFile, owned: true });
  return started(child, logFile);
}

/** Waits until the driver at `socket` answers Probe (and the process is still alive). */
export async function waitForSocket(
  socket: string,
  process: Started,
  timeoutMs = 120_000,
): Promise<void> {
  await waitFor(
    async () => {
      if (process.child.exitCode !== null) {
        throw new Error(
          `process ${process.pid} exited (${process.child.exitCode}):\n${process.log().slice(-3000)}`,
        );
      }
      if (!existsSync(socket)) return false;
      const csi = connectCsi(`unix://${socket}`, {
        protoPath: tool('CSI_PROTO'),
        timeoutMs: 2_000,
      });
      try {
        const identity: { probe(r: object, o?: CallOptions): Promise<unknown> } = csi.identity;
        await identity.probe({});
        return true;
      } finally {
        csi.close();
      }
    },
    timeoutMs,
    `the CSI driver at ${socket}`,
    () => process.log().slice(-3000),
  );
}

interface NodeCalls {
  nodeStageVolume(request: NodeStageVolumeRequest, options?: CallOptions): Promise<unknown>;
  nodeUnstageVolume(request: NodeUnstageVolumeRequest, options?: CallOptions): Promise<unknown>;
  nodePublishVolume(request: NodePublishVolumeRequest, options?: CallOptions): Promise<unknown>;
  nodeUnpublishVolume(request: NodeUnpublishVolumeRequest, options?: CallOptions): Promise<unknown>;
}

/**
 * Plays kubelet's part for one node: stages a PV's volume under `dir` and publishes it at a
 * target path, through the driver's CSI Node service, and undoes it all on `cleanup()`.
 */
export class Kubelet {
  private readonly csi;
  private readonly node: NodeCalls;
  private readonly mounted: Array<{ volumeId: string; staging: string; target: string }> = [];

  constructor(
    socket: string,
    private readonly dir: string,
  ) {
    this.csi = connectCsi(`unix://${socket}`, { protoPath: tool('CSI_PROTO'), timeoutMs: 60_000 });
    this.node = this.csi.node;
  }

  /** Stages and publishes the volume of `pv`; returns the directory where it is mounted. */
  async mount(pv: V1PersistentVolume): Promise<string> {
    const source = pv.spec?.csi;
    if (!source?.volumeHandle) throw new Error(`PV ${pv.metadata?.name} has no CSI volume handle`);
    const staging = path.join(this.dir, 'staging', pv.metadata!.name!);
    const target = path.join(this.dir, 'pods', pv.metadata!.name!, 'mount');
    mkdirSync(staging, { recursive: true });
    mkdirSync(path.dirname(target), { recursive: true });
    const capability: VolumeCapability = {
      mount: { fs_type: source.fsType ?? '', mount_flags: [] },
      access_mode: { mode: 'SINGLE_NODE_WRITER' },
    };
    const context = source.volumeAttributes ?? {};
    await whileBusy(() =>
      this.node.nodeStageVolume({
        volume_id: source.volumeHandle,
        staging_target_path: staging,
        volume_capability: capability,
        volume_context: context,
      }),
    );
    this.mounted.push({ volumeId: source.volumeHandle, staging, target });
    await whileBusy(() =>
      this.node.nodePublishVolume({
        volume_id: source.volumeHandle,
        staging_target_path: staging,
        target_path: target,
        volume_capability: capability,
        readonly: false,
        volume_context: context,
      }),
    );
    return target;
  }

  async unmount(volumeId: string): Promise<void> {
    const entry = this.mounted.find((m) => m.volumeId === volumeId);
    if (!entry) return;
    await whileBusy(() =>
      this.node.nodeUnpublishVolume({ volume_id: entry.volumeId, target_path: entry.target }),
    );
    await whileBusy(() =>
      this.node.nodeUnstageVolume({
        volume_id: entry.volumeId,
        staging_target_path: entry.staging,
      }),
    );
    this.mounted.splice(this.mounted.indexOf(entry), 1);
  }

  async cleanup(): Promise<void> {
    for (const entry of [...this.mounted].reverse()) await this.unmount(entry.volumeId);
    this.csi.close();
  }
}

/**
 * Repeats a Node call the driver refuses with ABORTED (another operation on the volume, such as
 * a snapshot copying it, is in flight), as kubelet retries it, for up to a minute.
 */
async function whileBusy<T>(call: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (let delayMs = 100; ; delayMs = Math.min(delayMs * 2, 2_000)) {
    try {
      return await call();
    } catch (error) {
      if (grpcCodeOf(error) !== GrpcStatus.ABORTED || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

export type Claim = V1PersistentVolumeClaim & KubeObject;
export type Volume = V1PersistentVolume & KubeObject;

/** Waits for a PVC to be Bound and returns it with its PV. */
export async function boundClaim(
  client: HttpKubeClient,
  namespace: string,
  name: string,
  timeoutMs = 120_000,
): Promise<{ pvc: Claim; pv: Volume }> {
  const pvc = await waitFor(
    async () => {
      const claim = await client.get<Claim>(PersistentVolumeClaims, name, namespace);
      return claim?.status?.phase === 'Bound' ? claim : undefined;
    },
    timeoutMs,
    `PVC ${namespace}/${name} to be Bound`,
    async () => JSON.stringify(await client.get(PersistentVolumeClaims, name, namespace)),
  );
  const pv = await client.get<Volume>(PersistentVolumes, pvc.spec!.volumeName!);
  if (!pv) throw new Error(`PV ${pvc.spec!.volumeName} of ${namespace}/${name} not found`);
  return { pvc, pv };
}

/** Events about one object, oldest first, as `<type> <reason>: <message>`. */
export async function eventsFor(
  client: HttpKubeClient,
  namespace: string,
  kind: string,
  name: string,
): Promise<
  Array<{ type: string; reason: string; message: string; component: string; host: string }>
> {
  const { items } = await client.list<
    KubeObject & {
      involvedObject: { kind?: string; name?: string };
      type: string;
      reason: string;
      message: string;
      source?: { component?: string; host?: string };
      reportingComponent?: string;
      reportingInstance?: string;
    }
  >({ group: '', version: 'v1', plural: 'events', kind: 'Event', namespaced: true }, { namespace });
  return items
    .filter((e) => e.involvedObject.kind === kind && e.involvedObject.name === name)
    .map((e) => ({
      type: e.type,
      reason: e.reason,
      message: e.message,
      component: e.source?.component ?? e.reportingComponent ?? '',
      host: e.source?.host ?? e.reportingInstance ?? '',
    }));
}

/**
 * The Events of an object once `ready(events)` holds: controllers write Events after the status
 * (in the background), so a test that saw the status waits for them.
 */
export async function eventsWhen(
  client: HttpKubeClient,
  namespace: string,
  kind: string,
  name: string,
  ready: (events: Awaited<ReturnType<typeof eventsFor>>) => boolean,
  timeoutMs = 30_000,
): Promise<Awaited<ReturnType<typeof eventsFor>>> {
  return waitFor(
    async () => {
      const events = await eventsFor(client, namespace, kind, name);
      return ready(events) ? events : undefined;
    },
    timeoutMs,
    `the Events of ${kind} ${namespace}/${name}`,
    async () =>
      JSON.stringify(
        (await eventsFor(client, namespace, kind, name)).map((e) => `${e.type} ${e.reason}`),
      ),
  );
}
