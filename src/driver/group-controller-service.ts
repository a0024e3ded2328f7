import type { GroupControllerHandlers } from '../gen/csi/csi/v1/GroupController.js';
import type { VolumeGroupSnapshot } from '../gen/csi/csi/v1/VolumeGroupSnapshot.js';
import type { AsyncHandlers } from '../csi/handlers.js';
import type { GroupSnapshot, GroupSnapshotBackend } from './backend.js';
import {
  forceDeleteParameter,
  parseForceDelete,
  requireField,
  splitParameters,
  toCsiSnapshot,
  toTimestamp,
} from './convert.js';
import { invalidArgument, notFound } from '../csi/errors.js';
import type { OperationLocks } from './operations.js';

export function toCsiGroupSnapshot(group: GroupSnapshot): VolumeGroupSnapshot {
  return {
    group_snapshot_id: group.id,
    snapshots: group.snapshots.map((s) => ({ ...toCsiSnapshot(s), group_snapshot_id: group.id })),
    creation_time: toTimestamp(group.creationTime),
    ready_to_use: group.readyToUse,
  };
}

/** The source volume ids of a create: at least one, none empty, none twice. */
export function checkSourceVolumeIds(ids: string[]): string[] {
  if (ids.length === 0) throw invalidArgument('source_volume_ids is required');
  ids.forEach((id, i) => requireField(id, `source_volume_ids[${i}]`));
  const twice = ids.filter((id, i) => ids.indexOf(id) !== i);
  if (twice.length > 0) {
    throw invalidArgument(
      `source_volume_ids names ${[...new Set(twice)].join(', ')} more than once`,
    );
  }
  return ids;
}

/**
 * Get and Delete carry the member snapshot ids the caller knows. A list that is not exactly
 * the group's members is INVALID_ARGUMENT, as CSI asks of a driver that can tell. An empty
 * list is accepted: the driver knows the members, and the CSI snapshotter sends none for a
 * group whose content status it never recorded, which must still be deletable.
 */
export function checkSnapshotIds(group: GroupSnapshot, snapshotIds: string[]): void {
  if (snapshotIds.length === 0) return;
  const members = new Set(group.snapshots.map((s) => s.id));
  const given = new Set(snapshotIds);
  const unknown = [...given].filter((id) => !members.has(id));
  const missing = [...members].filter((id) => !given.has(id));
  if (unknown.length === 0 && missing.length === 0 && given.size === snapshotIds.length) return;
  const problems = [
    unknown.length > 0 && `not members: ${unknown.join(', ')}`,
    missing.length > 0 && `members not listed: ${missing.join(', ')}`,
    given.size !== snapshotIds.length && 'an id is listed twice',
  ].filter(Boolean);
  throw invalidArgument(
    `snapshot_ids do not match the members of group snapshot ${group.id} (${problems.join('; ')})`,
  );
}

/**
 * The CSI GroupController service over a backend that can snapshot volumes together: request
 * checks here, the consistent cut and its bookkeeping in the backend.
 */
export function groupControllerService(
  backend: GroupSnapshotBackend,
  locks: OperationLocks,
): AsyncHandlers<GroupControllerHandlers> {
  return {
    async GroupControllerGetCapabilities() {
      return { capabilities: [{ rpc: { type: 'CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT' } }] };
    },

    async CreateVolumeGroupSnapshot(request) {
      const name = requireField(request.name, 'name');
      const sourceVolumeIds = checkSourceVolumeIds(request.source_volume_ids);
      const { parameters: classParameters, metadata } = splitParameters(request.parameters);
      const forceDelete = parseForceDelete(classParameters);
      const parameters = { ...classParameters };
      delete parameters[forceDeleteParameter];
      const keys = [`group/${name}`, ...sourceVolumeIds.map((id) => `volume/${id}`)];
      const group = await locks.run(keys, () =>
        backend.createGroupSnapshot({ name, sourceVolumeIds, forceDelete, parameters, metadata }),
      );
      return { group_snapshot: toCsiGroupSnapshot(group) };
    },

    async DeleteVolumeGroupSnapshot(request) {
      const id = requireField(request.group_snapshot_id, 'group_snapshot_id');
      await locks.run([`group/${id}`], async () => {
        const group = await backend.getGroupSnapshot(id);
        if (group) checkSnapshotIds(group, request.snapshot_ids);
        // Even when not found: a group still being cut is not reported yet, and the backend's
        // delete waits for the cut to end before it looks.
        await backend.deleteGroupSnapshot(id);
      });
      return {};
    },

    async GetVolumeGroupSnapshot(request) {
      const id = requireField(request.group_snapshot_id, 'group_snapshot_id');
      const group = await backend.getGroupSnapshot(id);
      if (!group) throw notFound(`group snapshot ${id} does not exist`);
      checkSnapshotIds(group, request.snapshot_ids);
      return { group_snapshot: toCsiGroupSnapshot(group) };
    },
  };
}
