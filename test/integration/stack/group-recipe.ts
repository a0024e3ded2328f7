/**
 * The group recipe, played at the Kubernetes level: two PVCs labelled app=db with a file each,
 * one VolumeGroupSnapshot over the label, a PVC restored from one member. Played against
 * snapback's embedded stack and against upstream's (with its group feature gate on); what each
 * leaves is reduced to a `GroupObservation` the two runs can be compared on.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import {
  memberVolumeSnapshotContentNameFor,
  memberVolumeSnapshotNameFor,
  volumeGroupSnapshotContentNameFor,
  type VolumeGroupSnapshot,
  type VolumeGroupSnapshotContent,
} from '../../../src/api/group-snapshot.js';
import type { VolumeSnapshot, VolumeSnapshotContent } from '../../../src/api/snapshot.js';
import {
  PersistentVolumeClaims,
  VolumeGroupSnapshotClasses,
  VolumeGroupSnapshotContents,
  VolumeGroupSnapshots,
  type HttpKubeClient,
  type KubeObject,
} from '../../../src/kube/index.js';
import { VolumeSnapshotContents, VolumeSnapshots } from '../../../src/kube/resource.js';
import { waitFor } from '../../support/processes.js';
import { claim, readySnapshot, writeDurably } from './recipe.js';
import { LOCAL_DRIVER, boundClaim, eventsFor, type Kubelet } from './support.js';

const MEMBERS = ['db-0', 'db-1'] as const;
const GROUP = 'db';

export interface GroupRecipeResult {
  group: VolumeGroupSnapshot;
  groupContent: VolumeGroupSnapshotContent;
  /** The volume handle of each member PVC. */
  handles: Record<string, string>;
  /** The instants the driver reported for the members (one, for a consistent group). */
  instants: number;
  /** What the PVC restored from db-1's member holds. */
  restoredEntries: string[];
  restoredText: string;
  written: string;
}

/** What a group run leaves that does not depend on names, UIDs or times. */
export interface GroupObservation {
  group: { finalizers: string[]; status: Record<string, unknown>; events: string[] };
  groupContent: {
    nameIsGroupsnapcontentUid: boolean;
    finalizers: string[];
    annotations: string[];
    spec: Record<string, unknown>;
    status: Record<string, unknown>;
  };
  members: Array<{
    pvc: string;
    nameFromGroupAndHandle: boolean;
    finalizers: string[];
    ownedByTheGroup: boolean;
    labels: string[];
    spec: Record<string, unknown>;
    status: Record<string, unknown>;
    content: {
      nameFromGroupAndHandle: boolean;
      finalizers: string[];
      annotations: string[];
      spec: Record<string, unknown>;
      status: Record<string, unknown>;
    };
  }>;
  restored: { files: string[]; sameText: boolean };
}

/** Plays the group recipe in `namespace`; the class is named after it. */
export async function playGroupRecipe(
  client: HttpKubeClient,
  kubelet: Kubelet,
  namespace: string,
  logs: () => string,
): Promise<GroupRecipeResult> {
  const written: Record<string, string> = {};
  const handles: Record<string, string> = {};
  for (const name of MEMBERS) {
    await client.create(PersistentVolumeClaims, {
      ...claim(name, namespace),
      metadata: { name, namespace, labels: { app: 'db' } },
    });
    const { pv } = await boundClaim(client, namespace, name);
    handles[name] = pv.spec!.csi!.volumeHandle;
    written[name] = `${name} before the group snapshot\n`;
    writeDurably(path.join(await kubelet.mount(pv), 'test'), written[name]);
  }
  await client.create(VolumeGroupSnapshotClasses, {
    apiVersion: 'groupsnapshot.storage.k8s.io/v1',
    kind: 'VolumeGroupSnapshotClass',
    metadata: { name: groupClassName(namespace) },
    driver: LOCAL_DRIVER,
    deletionPolicy: 'Delete',
    parameters: { forceDelete: 'true' },
  } as KubeObject);
  await client.create(VolumeGroupSnapshots, {
    apiVersion: 'groupsnapshot.storage.k8s.io/v1',
    kind: 'VolumeGroupSnapshot',
    metadata: { name: GROUP, namespace },
    spec: {
      volumeGroupSnapshotClassName: groupClassName(namespace),
      source: { selector: { matchLabels: { app: 'db' } } },
    },
  } as KubeObject);
  const group = await waitFor(
    async () => {
      const g = await client.get<VolumeGroupSnapshot>(VolumeGroupSnapshots, GROUP, namespace);
      return g?.status?.readyToUse ? g : undefined;
    },
    120_000,
    'the group snapshot to be ready',
    async () =>
      JSON.stringify((await client.get(VolumeGroupSnapshots, GROUP, namespace)) ?? {}) + logs(),
  );
  const groupContent = (await client.get<VolumeGroupSnapshotContent>(
    VolumeGroupSnapshotContents,
    group.status!.boundVolumeGroupSnapshotContentName!,
  ))!;
  const uid = group.metadata.uid!;
  for (const name of MEMBERS) {
    await readySnapshot(client, namespace, memberVolumeSnapshotNameFor(uid, handles[name]!));
  }
  // restore db-1's member into a new PVC: its file comes back
  await client.create(PersistentVolumeClaims, {
    ...claim('db-1-restored', namespace, {
      dataSource: {
        apiGroup: 'snapshot.storage.k8s.io',
        kind: 'VolumeSnapshot',
        name: memberVolumeSnapshotNameFor(uid, handles['db-1']!),
      },
    }),
    metadata: { name: 'db-1-restored', namespace },
  });
  const restored = await boundClaim(client, namespace, 'db-1-restored');
  const dir = await kubelet.mount(restored.pv);
  const infos = groupContent.status?.volumeSnapshotInfoList ?? [];
  return {
    group,
    groupContent,
    handles,
    instants: new Set(infos.map((info) => info.creationTime)).size,
    restoredEntries: readdirSync(dir).sort(),
    restoredText: readFileSync(path.join(dir, 'test'), 'utf8'),
    written: written['db-1']!,
  };
}

export async function observeGroup(
  client: HttpKubeClient,
  namespace: string,
  result: GroupRecipeResult,
): Promise<GroupObservation> {
  const group = (await client.get<VolumeGroupSnapshot>(VolumeGroupSnapshots, GROUP, namespace))!;
  const uid = group.metadata.uid!;
  const groupContent = (await client.get<VolumeGroupSnapshotContent>(
    VolumeGroupSnapshotContents,
    group.status!.boundVolumeGroupSnapshotContentName!,
  ))!;
  const sorted = (values: string[] | undefined) => [...(values ?? [])].sort();
  const keys = (values: Record<string, unknown> | undefined) => Object.keys(values ?? {}).sort();
  const reasons = (events: Array<{ type: string; reason: string }>) =>
    [...new Set(events.map((e) => `${e.type} ${e.reason}`))].sort();
  const members: GroupObservation['members'] = [];
  for (const pvc of MEMBERS) {
    const handle = result.handles[pvc]!;
    const snapshotName = memberVolumeSnapshotNameFor(uid, handle);
    const snapshot = (await client.get<VolumeSnapshot>(VolumeSnapshots, snapshotName, namespace))!;
    const contentName = snapshot.status?.boundVolumeSnapshotContentName ?? '';
    const content = (await client.get<VolumeSnapshotContent>(VolumeSnapshotContents, contentName))!;
    members.push({
      pvc,
      nameFromGroupAndHandle: snapshot.metadata.name === snapshotName,
      finalizers: sorted(snapshot.metadata.finalizers),
      ownedByTheGroup: !!snapshot.metadata.ownerReferences?.some(
        (o) => o.kind === 'VolumeGroupSnapshot' && o.uid === uid,
      ),
      labels: keys(snapshot.metadata.labels),
      spec: {
        source: keys(snapshot.spec.source as Record<string, unknown>),
        sourceIsItsContent: snapshot.spec.source.volumeSnapshotContentName === contentName,
        volumeSnapshotClassName: snapshot.spec.volumeSnapshotClassName,
      },
      status: {
        readyToUse: snapshot.status?.readyToUse,
        restoreSize: snapshot.status?.restoreSize,
        inTheGroup: snapshot.status?.volumeGroupSnapshotName === GROUP,
        hasCreationTime: !!snapshot.status?.creationTime,
        error: snapshot.status?.error,
      },
      content: {
        nameFromGroupAndHandle: contentName === memberVolumeSnapshotContentNameFor(uid, handle),
        finalizers: sorted(content.metadata.finalizers),
        annotations: keys(content.metadata.annotations),
        spec: {
          deletionPolicy: content.spec.deletionPolicy,
          driver: content.spec.driver,
          source: keys(content.spec.source as Record<string, unknown>),
          boundToTheMember: content.spec.volumeSnapshotRef?.uid === snapshot.metadata.uid,
        },
        status: {
          readyToUse: content.status?.readyToUse,
          restoreSize: content.status?.restoreSize,
          hasSnapshotHandle: !!content.status?.snapshotHandle,
          inTheGroup:
            content.status?.volumeGroupSnapshotHandle ===
            groupContent.status?.volumeGroupSnapshotHandle,
        },
      },
    });
  }
  return {
    group: {
      finalizers: sorted(group.metadata.finalizers),
      status: {
        readyToUse: group.status?.readyToUse,
        boundToItsContent:
          group.status?.boundVolumeGroupSnapshotContentName === groupContent.metadata.name,
        hasCreationTime: !!group.status?.creationTime,
        error: group.status?.error,
      },
      events: reasons(await eventsFor(client, namespace, 'VolumeGroupSnapshot', GROUP)),
    },
    groupContent: {
      nameIsGroupsnapcontentUid:
        groupContent.metadata.name === volumeGroupSnapshotContentNameFor(uid),
      finalizers: sorted(groupContent.metadata.finalizers),
      annotations: keys(groupContent.metadata.annotations),
      spec: {
        deletionPolicy: groupContent.spec.deletionPolicy,
        driver: groupContent.spec.driver,
        source: keys(groupContent.spec.source as Record<string, unknown>),
        sourceIsTheMemberVolumes:
          JSON.stringify(sorted(groupContent.spec.source.volumeHandles)) ===
          JSON.stringify(sorted(Object.values(result.handles))),
      },
      status: {
        readyToUse: groupContent.status?.readyToUse,
        hasGroupHandle: !!groupContent.status?.volumeGroupSnapshotHandle,
        members: (groupContent.status?.volumeSnapshotInfoList ?? []).length,
        oneInstant: result.instants === 1,
        error: groupContent.status?.error,
      },
    },
    members,
    restored: {
      files: result.restoredEntries,
      sameText: result.restoredText === result.written,
    },
  };
}

/** Deletes the group (its members go with it) and its class, waiting while the stack runs. */
export async function deleteGroupRecipe(
  client: HttpKubeClient,
  namespace: string,
  logs: () => string,
): Promise<void> {
  await client.delete(VolumeGroupSnapshots, GROUP, namespace).catch(() => undefined);
  await waitFor(
    async () =>
      !(await client.get(VolumeGroupSnapshots, GROUP, namespace)) &&
      (await client.list<VolumeSnapshot>(VolumeSnapshots, { namespace })).items.every(
        (s) => !s.metadata.ownerReferences?.some((o) => o.kind === 'VolumeGroupSnapshot'),
      ),
    120_000,
    'the group snapshot and its members to be deleted',
    async () =>
      JSON.stringify((await client.get(VolumeGroupSnapshots, GROUP, namespace)) ?? {}) + logs(),
  );
  await client.delete(VolumeGroupSnapshotClasses, groupClassName(namespace)).catch(() => undefined);
}

function groupClassName(namespace: string): string {
  return `${namespace}-group`;
}
