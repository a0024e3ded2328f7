import { expect } from 'chai';

import { DiskError } from '../../../../../src/csi/errors.js';
import {
  checkExistingDisk,
  checkExistingGroup,
  checkExistingSnapshot,
  defaultDiskBytes,
  groupMembers,
  minimumDiskBytes,
  plannedDiskBytes,
  rejectParameters,
  type DiskRecord,
  type GroupSnapshotRecord,
  type SnapshotRecord,
} from '../../../../../src/driver/backends/local/metadata.js';

const GiB = 1024 ** 3;
const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (error) {
    return error instanceof DiskError ? error.code : 'not a DiskError';
  }
  return undefined;
};

const disk = (over: Partial<DiskRecord> = {}): DiskRecord => ({
  id: 'pvc-1',
  capacityBytes: GiB,
  state: 'ready',
  createdAt: '2026-01-01T00:00:00Z',
  ...over,
});

describe('local backend: disk sizes', function () {
  it('uses required_bytes, aligned to 4 KiB', function () {
    expect(plannedDiskBytes({ requiredBytes: GiB, limitBytes: 0 })).to.equal(GiB);
    expect(plannedDiskBytes({ requiredBytes: GiB + 1, limitBytes: 0 })).to.equal(GiB + 4096);
  });

  it('defaults a blank disk to 1 GiB, or to the limit when that is smaller', function () {
    expect(plannedDiskBytes({ requiredBytes: 0, limitBytes: 0 })).to.equal(defaultDiskBytes);
    expect(plannedDiskBytes({ requiredBytes: 0, limitBytes: 100 * 1024 * 1024 })).to.equal(
      100 * 1024 * 1024,
    );
  });

  it('raises a tiny request to the minimum that still holds ext4', function () {
    expect(plannedDiskBytes({ requiredBytes: 1, limitBytes: 0 })).to.equal(minimumDiskBytes);
    expect(codeOf(() => plannedDiskBytes({ requiredBytes: 1, limitBytes: 1024 }))).to.equal(
      'OUT_OF_RANGE',
    );
  });

  it('restores into the snapshot size by default and refuses anything smaller', function () {
    expect(plannedDiskBytes({ requiredBytes: 0, limitBytes: 0 }, 2 * GiB)).to.equal(2 * GiB);
    expect(plannedDiskBytes({ requiredBytes: 3 * GiB, limitBytes: 0 }, 2 * GiB)).to.equal(3 * GiB);
    expect(codeOf(() => plannedDiskBytes({ requiredBytes: GiB, limitBytes: 0 }, 2 * GiB))).to.equal(
      'OUT_OF_RANGE',
    );
    expect(codeOf(() => plannedDiskBytes({ requiredBytes: 0, limitBytes: GiB }, 2 * GiB))).to.equal(
      'OUT_OF_RANGE',
    );
  });
});

describe('local backend: repeated creates', function () {
  it('accepts the same request again', function () {
    expect(() => checkExistingDisk(disk(), { requiredBytes: GiB, limitBytes: 0 })).not.to.throw();
    expect(() => checkExistingDisk(disk(), { requiredBytes: GiB, limitBytes: GiB })).not.to.throw();
  });

  it('answers a different size or source with ALREADY_EXISTS', function () {
    expect(
      codeOf(() => checkExistingDisk(disk(), { requiredBytes: 2 * GiB, limitBytes: 0 })),
    ).to.equal('ALREADY_EXISTS');
    expect(
      codeOf(() => checkExistingDisk(disk(), { requiredBytes: 0, limitBytes: GiB / 2 })),
    ).to.equal('ALREADY_EXISTS');
    expect(
      codeOf(() =>
        checkExistingDisk(disk(), {
          requiredBytes: GiB,
          limitBytes: 0,
          source: { kind: 'snapshot', snapshotId: 's' },
        }),
      ),
    ).to.equal('ALREADY_EXISTS');
    expect(
      codeOf(() =>
        checkExistingDisk(disk({ source: { kind: 'snapshot', snapshotId: 's' } }), {
          requiredBytes: GiB,
          limitBytes: 0,
          source: { kind: 'snapshot', snapshotId: 'other' },
        }),
      ),
    ).to.equal('ALREADY_EXISTS');
  });

  it('answers a snapshot name reused for another volume with ALREADY_EXISTS', function () {
    const snapshot: SnapshotRecord = {
      id: 'snap',
      sourceVolumeId: 'vol-a',
      sizeBytes: GiB,
      state: 'ready',
      forceDelete: false,
      creationTime: '2026-01-01T00:00:00Z',
      dependents: [],
    };
    expect(() => checkExistingSnapshot(snapshot, 'vol-a')).not.to.throw();
    expect(codeOf(() => checkExistingSnapshot(snapshot, 'vol-b'))).to.equal('ALREADY_EXISTS');
  });

  it('refuses parameters it does not know, naming them', function () {
    expect(() => rejectParameters('StorageClass', {})).not.to.throw();
    expect(codeOf(() => rejectParameters('StorageClass', { type: 'ssd' }))).to.equal(
      'INVALID_ARGUMENT',
    );
    expect(() => rejectParameters('StorageClass', { type: 'ssd', iops: '3' })).to.throw(
      /type, iops/,
    );
  });
});

describe('local backend: group snapshot members', function () {
  it("names members by the group's name and the volume's rank, whatever the request order", function () {
    expect(groupMembers('group-1', ['pvc-b', 'pvc-a'])).to.deep.equal([
      { snapshotId: 'group-1-1', sourceVolumeId: 'pvc-b' },
      { snapshotId: 'group-1-0', sourceVolumeId: 'pvc-a' },
    ]);
  });

  it('keeps member names within the name limit for the longest group names', function () {
    const long = 'g'.repeat(128);
    const members = groupMembers(long, ['pvc-a']);
    expect(members[0]!.snapshotId).to.match(/^group-[0-9a-f]{40}-0$/);
    expect(groupMembers(long, ['pvc-a'])).to.deep.equal(members);
    expect(groupMembers(`${long.slice(1)}h`, ['pvc-a'])[0]!.snapshotId).to.not.equal(
      members[0]!.snapshotId,
    );
  });

  it('answers a repeated create when the set of volumes and forceDelete match, else ALREADY_EXISTS', function () {
    const group: GroupSnapshotRecord = {
      id: 'group-1',
      members: groupMembers('group-1', ['pvc-a', 'pvc-b']),
      state: 'ready',
      forceDelete: false,
      creationTime: '2026-01-01T00:00:00Z',
    };
    expect(codeOf(() => checkExistingGroup(group, ['pvc-b', 'pvc-a'], false))).to.equal(undefined);
    expect(codeOf(() => checkExistingGroup(group, ['pvc-a'], false))).to.equal('ALREADY_EXISTS');
    expect(codeOf(() => checkExistingGroup(group, ['pvc-a', 'pvc-c'], false))).to.equal(
      'ALREADY_EXISTS',
    );
    expect(codeOf(() => checkExistingGroup(group, ['pvc-a', 'pvc-b'], true))).to.equal(
      'ALREADY_EXISTS',
    );
  });

  it('refuses a snapshot name that belongs to a member of a group', function () {
    const member: SnapshotRecord = {
      id: 'group-1-0',
      sourceVolumeId: 'pvc-a',
      sizeBytes: GiB,
      state: 'ready',
      forceDelete: false,
      creationTime: '2026-01-01T00:00:00Z',
      dependents: [],
      groupSnapshotId: 'group-1',
    };
    expect(codeOf(() => checkExistingSnapshot(member, 'pvc-a'))).to.equal('ALREADY_EXISTS');
  });
});
