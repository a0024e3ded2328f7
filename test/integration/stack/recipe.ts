/**
 * The recipe this project automates, played at the Kubernetes level: a PVC of a local
 * StorageClass, a file written through a CSI node mount, a VolumeSnapshot, a PVC restored from
 * it. Used against snapback's embedded stack and against upstream's, and what each leaves
 * behind is reduced to an `Observation` the two runs can be compared on.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, fsyncSync, openSync, readFileSync, readdirSync, writeSync } from 'node:fs';
import path from 'node:path';
import {
  SNAPSHOT_API_VERSION,
  type VolumeSnapshot,
  type VolumeSnapshotContent,
} from '../../../src/api/snapshot.js';
import {
  PersistentVolumeClaims,
  StorageClasses,
  type HttpKubeClient,
  type KubeObject,
} from '../../../src/kube/index.js';
import {
  VolumeSnapshotClasses,
  VolumeSnapshotContents,
  VolumeSnapshots,
} from '../../../src/kube/resource.js';
import { waitFor } from '../../support/processes.js';
import {
  LOCAL_DRIVER,
  boundClaim,
  eventsFor,
  type Claim,
  type Kubelet,
  type Volume,
} from './support.js';

export const VOLUME_SIZE = '64Mi';

/** Cluster-scoped classes named after the test namespace, removed by `deleteClasses`. */
export async function createClasses(
  client: HttpKubeClient,
  name: string,
  options: { forceDelete: boolean; deletionPolicy?: 'Delete' | 'Retain' },
): Promise<void> {
  await client.create(StorageClasses, {
    metadata: { name },
    provisioner: LOCAL_DRIVER,
    reclaimPolicy: 'Delete',
    volumeBindingMode: 'Immediate',
  } as KubeObject);
  await client.create(VolumeSnapshotClasses, {
    metadata: { name },
    driver: LOCAL_DRIVER,
    deletionPolicy: options.deletionPolicy ?? 'Delete',
    parameters: { forceDelete: String(options.forceDelete) },
  } as KubeObject);
}

export async function deleteClasses(client: HttpKubeClient, name: string): Promise<void> {
  await client.delete(StorageClasses, name).catch(() => undefined);
  await client.delete(VolumeSnapshotClasses, name).catch(() => undefined);
}

export function claim(
  name: string,
  storageClass: string,
  extra: Record<string, unknown> = {},
): Claim {
  return {
    metadata: { name },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: storageClass,
      resources: { requests: { storage: VOLUME_SIZE } },
      ...extra,
    },
  } as Claim;
}

export function volumeSnapshot(name: string, pvc: string, snapshotClass: string): VolumeSnapshot {
  return {
    apiVersion: SNAPSHOT_API_VERSION,
    kind: 'VolumeSnapshot',
    metadata: { name },
    spec: { source: { persistentVolumeClaimName: pvc }, volumeSnapshotClassName: snapshotClass },
  };
}

export async function readySnapshot(
  client: HttpKubeClient,
  namespace: string,
  name: string,
  timeoutMs = 120_000,
): Promise<VolumeSnapshot> {
  return waitFor(
    async () => {
      const vs = await client.get<VolumeSnapshot>(VolumeSnapshots, name, namespace);
      return vs?.status?.readyToUse === true ? vs : undefined;
    },
    timeoutMs,
    `VolumeSnapshot ${namespace}/${name} to be readyToUse`,
    async () => JSON.stringify(await client.get(VolumeSnapshots, name, namespace)),
  );
}

/** Writes a file and makes sure it reached the disk image before a snapshot is taken. */
export function writeDurably(file: string, text: string): void {
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  execFileSync('sync', ['-f', file]);
}

export interface RecipeResult {
  namespace: string;
  source: { pvc: Claim; pv: Volume };
  snapshot: VolumeSnapshot;
  content: VolumeSnapshotContent;
  restored: { pvc: Claim; pv: Volume };
  written: string;
  restoredEntries: string[];
  restoredText: string;
}

/** The recipe, step by step; each step waits for its outcome before the next one starts. */
export async function playRecipe(
  client: HttpKubeClient,
  kubelet: Kubelet,
  namespace: string,
  className: string,
): Promise<RecipeResult> {
  await client.create(PersistentVolumeClaims, {
    ...claim('data', className),
    metadata: { name: 'data', namespace },
  });
  const source = await boundClaim(client, namespace, 'data');

  const mounted = await kubelet.mount(source.pv);
  const written = `written before the backup in ${namespace} at ${new Date().toISOString()}\n`;
  writeDurably(path.join(mounted, 'test'), written);

  await client.create(VolumeSnapshots, {
    ...volumeSnapshot('snap', 'data', className),
    metadata: { name: 'snap', namespace },
  });
  const snapshot = await readySnapshot(client, namespace, 'snap');
  const content = await client.get<VolumeSnapshotContent>(
    VolumeSnapshotContents,
    snapshot.status!.boundVolumeSnapshotContentName!,
  );
  if (!content)
    throw new Error(`content ${snapshot.status!.boundVolumeSnapshotContentName} not found`);

  await client.create(PersistentVolumeClaims, {
    ...claim('restored', className, {
      dataSource: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 'snap' },
      resources: { requests: { storage: snapshot.status!.restoreSize ?? VOLUME_SIZE } },
    }),
    metadata: { name: 'restored', namespace },
  });
  const restored = await boundClaim(client, namespace, 'restored');
  const restoredDir = await kubelet.mount(restored.pv);
  return {
    namespace,
    source,
    snapshot,
    content,
    restored,
    written,
    restoredEntries: readdirSync(restoredDir).sort(),
    restoredText: readFileSync(path.join(restoredDir, 'test'), 'utf8'),
  };
}

/**
 * What a run leaves that does not depend on names, UIDs or times: the shape both stacks must
 * agree on. Read once the stack has settled (the PVC source-protection finalizer removed).
 */
export interface Observation {
  snapshot: {
    finalizers: string[];
    annotations: string[];
    status: Record<string, unknown>;
    events: string[];
  };
  content: {
    nameIsSnapcontentUid: boolean;
    finalizers: string[];
    annotations: string[];
    spec: Record<string, unknown>;
    status: Record<string, unknown>;
    events: string[];
  };
  sourcePvcFinalizers: string[];
  restored: {
    phase?: string;
    capacity?: string;
    dataSource: unknown;
    files: string[];
    sameText: boolean;
  };
}

export async function observe(client: HttpKubeClient, result: RecipeResult): Promise<Observation> {
  const { namespace } = result;
  // the snapshot controller drops the source protection once the snapshot is ready
  const sourcePvc = await waitFor(
    async () => {
      const pvc = await client.get<Claim>(PersistentVolumeClaims, 'data', namespace);
      return pvc &&
        !pvc.metadata?.finalizers?.includes(
          'snapshot.storage.kubernetes.io/pvc-as-source-protection',
        )
        ? pvc
        : undefined;
    },
    60_000,
    'the PVC source-protection finalizer to be removed',
    async () =>
      JSON.stringify(
        (await client.get<Claim>(PersistentVolumeClaims, 'data', namespace))?.metadata,
      ),
  );
  const vs = (await client.get<VolumeSnapshot>(VolumeSnapshots, 'snap', namespace))!;
  const content = (await client.get<VolumeSnapshotContent>(
    VolumeSnapshotContents,
    vs.status!.boundVolumeSnapshotContentName!,
  ))!;
  const restored = (await client.get<Claim>(PersistentVolumeClaims, 'restored', namespace))!;
  const reasons = (events: Array<{ type: string; reason: string }>) =>
    [...new Set(events.map((e) => `${e.type} ${e.reason}`))].sort();
  const ref = content.spec.volumeSnapshotRef;
  return {
    snapshot: {
      finalizers: [...(vs.metadata.finalizers ?? [])].sort(),
      annotations: Object.keys(vs.metadata.annotations ?? {}).sort(),
      status: {
        readyToUse: vs.status?.readyToUse,
        restoreSize: vs.status?.restoreSize,
        boundToItsContent: vs.status?.boundVolumeSnapshotContentName === content.metadata.name,
        hasCreationTime: !!vs.status?.creationTime,
        error: vs.status?.error,
      },
      events: reasons(await eventsFor(client, namespace, 'VolumeSnapshot', 'snap')),
    },
    content: {
      nameIsSnapcontentUid: content.metadata.name === `snapcontent-${vs.metadata.uid}`,
      finalizers: [...(content.metadata.finalizers ?? [])].sort(),
      annotations: Object.keys(content.metadata.annotations ?? {}).sort(),
      spec: {
        deletionPolicy: content.spec.deletionPolicy,
        driver: content.spec.driver,
        volumeSnapshotClassName:
          content.spec.volumeSnapshotClassName === vs.spec.volumeSnapshotClassName,
        sourceIsThePv:
          content.spec.source.volumeHandle === result.source.pv.spec?.csi?.volumeHandle,
        sourceVolumeMode: content.spec.sourceVolumeMode,
        ref: {
          apiVersion: ref.apiVersion,
          kind: ref.kind,
          name: ref.name === 'snap',
          namespace: ref.namespace === namespace,
          uid: ref.uid === vs.metadata.uid,
        },
      },
      status: {
        readyToUse: content.status?.readyToUse,
        restoreSize: content.status?.restoreSize,
        hasSnapshotHandle: !!content.status?.snapshotHandle,
        hasCreationTime: !!content.status?.creationTime,
        error: content.status?.error,
      },
      // Events about cluster-scoped objects live in the default namespace
      events: reasons(
        await eventsFor(client, 'default', 'VolumeSnapshotContent', content.metadata.name!),
      ),
    },
    sourcePvcFinalizers: [...(sourcePvc.metadata?.finalizers ?? [])].sort(),
    restored: {
      phase: restored.status?.phase,
      capacity: restored.status?.capacity?.storage as string | undefined,
      dataSource: restored.spec?.dataSource,
      files: result.restoredEntries,
      sameText: result.restoredText === result.written,
    },
  };
}
