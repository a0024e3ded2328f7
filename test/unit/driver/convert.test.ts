import { expect } from 'chai';

import type { BackendCapabilities } from '../../../src/driver/backend.js';
import {
  capabilityProblem,
  parseBytes,
  parseCapacityRange,
  parseForceDelete,
  splitParameters,
  toCsiSnapshot,
  toTimestamp,
  toVolumeCapability,
  toVolumeSource,
} from '../../../src/driver/convert.js';
import { DiskError } from '../../../src/csi/errors.js';
import type { VolumeCapability__Output } from '../../../src/gen/csi/csi/v1/VolumeCapability.js';

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (error) {
    return error instanceof DiskError ? error.code : 'not a DiskError';
  }
  return undefined;
};

const mountCapability = (mode: string, fsType = ''): VolumeCapability__Output =>
  ({
    access_type: 'mount',
    mount: { fs_type: fsType, mount_flags: ['noatime'], volume_mount_group: '' },
    access_mode: { mode },
  }) as VolumeCapability__Output;

const supported: BackendCapabilities = {
  accessModes: ['SINGLE_NODE_WRITER'],
  accessTypes: ['mount'],
  fsTypes: ['ext4'],
  cloneVolume: false,
  onlineExpansion: true,
};

describe('driver: CSI message conversion', function () {
  it('parses int64 byte counts and refuses negative, huge and non-numeric ones', function () {
    expect(parseBytes('1073741824', 'x')).to.equal(1073741824);
    expect(codeOf(() => parseBytes('-1', 'x'))).to.equal('OUT_OF_RANGE');
    expect(codeOf(() => parseBytes('9223372036854775807', 'x'))).to.equal('OUT_OF_RANGE');
    expect(codeOf(() => parseBytes('12abc', 'x'))).to.equal('INVALID_ARGUMENT');
  });

  it('treats an absent capacity range as "backend decides" and a limit below required as OUT_OF_RANGE', function () {
    expect(parseCapacityRange(null)).to.deep.equal({ requiredBytes: 0, limitBytes: 0 });
    expect(parseCapacityRange({ required_bytes: '10', limit_bytes: '0' })).to.deep.equal({
      requiredBytes: 10,
      limitBytes: 0,
    });
    expect(codeOf(() => parseCapacityRange({ required_bytes: '10', limit_bytes: '5' }))).to.equal(
      'OUT_OF_RANGE',
    );
  });

  it('decodes a mount capability and refuses one without access mode or type', function () {
    expect(toVolumeCapability(mountCapability('SINGLE_NODE_WRITER', 'ext4'))).to.deep.equal({
      access: { type: 'mount', fsType: 'ext4', mountFlags: ['noatime'] },
      accessMode: 'SINGLE_NODE_WRITER',
    });
    expect(codeOf(() => toVolumeCapability(mountCapability('UNKNOWN')))).to.equal(
      'INVALID_ARGUMENT',
    );
    expect(
      codeOf(() =>
        toVolumeCapability({
          access_mode: { mode: 'SINGLE_NODE_WRITER' },
        } as VolumeCapability__Output),
      ),
    ).to.equal('INVALID_ARGUMENT');
    expect(codeOf(() => toVolumeCapability(null))).to.equal('INVALID_ARGUMENT');
  });

  it('names what a backend does not support in a capability', function () {
    const ok = toVolumeCapability(mountCapability('SINGLE_NODE_WRITER'));
    expect(capabilityProblem(ok, supported)).to.equal(undefined);
    const multi = toVolumeCapability(mountCapability('MULTI_NODE_MULTI_WRITER'));
    expect(capabilityProblem(multi, supported)).to.match(
      /MULTI_NODE_MULTI_WRITER is not supported/,
    );
    const xfs = toVolumeCapability(mountCapability('SINGLE_NODE_WRITER', 'xfs'));
    expect(capabilityProblem(xfs, supported)).to.match(/file system xfs is not supported/);
    const block = { access: { type: 'block' as const }, accessMode: 'SINGLE_NODE_WRITER' as const };
    expect(capabilityProblem(block, supported)).to.match(/block volumes are not supported/);
  });

  it("separates the sidecars' csi.storage.k8s.io/ keys from class parameters", function () {
    expect(
      splitParameters({
        forceDelete: 'true',
        'csi.storage.k8s.io/volumesnapshot/name': 'snap',
        type: 'cloud_essd',
      }),
    ).to.deep.equal({
      parameters: { forceDelete: 'true', type: 'cloud_essd' },
      metadata: { 'csi.storage.k8s.io/volumesnapshot/name': 'snap' },
    });
  });

  it('reads forceDelete as true/false in any case, false when absent, and refuses anything else', function () {
    expect(parseForceDelete({})).to.equal(false);
    expect(parseForceDelete({ forceDelete: 'TRUE' })).to.equal(true);
    expect(parseForceDelete({ forceDelete: 'false' })).to.equal(false);
    expect(codeOf(() => parseForceDelete({ forceDelete: 'yes' }))).to.equal('INVALID_ARGUMENT');
  });

  it('decodes snapshot and volume content sources and refuses an empty one', function () {
    expect(
      toVolumeSource({ type: 'snapshot', snapshot: { snapshot_id: 's1' } } as never),
    ).to.deep.equal({ kind: 'snapshot', snapshotId: 's1' });
    expect(toVolumeSource({ type: 'volume', volume: { volume_id: 'v1' } } as never)).to.deep.equal({
      kind: 'volume',
      volumeId: 'v1',
    });
    expect(toVolumeSource(null)).to.equal(undefined);
    expect(codeOf(() => toVolumeSource({} as never))).to.equal('INVALID_ARGUMENT');
    expect(
      codeOf(() => toVolumeSource({ type: 'snapshot', snapshot: { snapshot_id: '' } } as never)),
    ).to.equal('INVALID_ARGUMENT');
  });

  it('writes snapshots with int64 fields as strings and a protobuf timestamp', function () {
    const creationTime = new Date('2026-01-02T03:04:05.678Z');
    expect(toTimestamp(creationTime)).to.deep.equal({
      seconds: String(Math.floor(creationTime.getTime() / 1000)),
      nanos: 678_000_000,
    });
    expect(
      toCsiSnapshot({
        id: 's',
        sourceVolumeId: 'v',
        sizeBytes: 5,
        creationTime,
        readyToUse: false,
      }),
    ).to.include({ snapshot_id: 's', source_volume_id: 'v', size_bytes: '5', ready_to_use: false });
  });

  it('names the group of a member snapshot (group_snapshot_id), and leaves it out otherwise', function () {
    const snapshot = {
      id: 's',
      sourceVolumeId: 'v',
      sizeBytes: 5,
      creationTime: new Date(0),
      readyToUse: true,
    };
    expect(toCsiSnapshot({ ...snapshot, groupSnapshotId: 'g' })).to.include({
      group_snapshot_id: 'g',
    });
    expect(toCsiSnapshot(snapshot)).to.not.have.property('group_snapshot_id');
  });
});
