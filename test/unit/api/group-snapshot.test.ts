import { expect } from 'chai';
import {
  ANN_VOLUME_GROUP_SNAPSHOT_HANDLE,
  FINALIZER_VOLUME_GROUP_SNAPSHOT_BOUND,
  FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND,
  GROUP_SNAPSHOT_API_VERSION,
  PARAM_VOLUME_GROUP_SNAPSHOT_NAME,
  memberVolumeSnapshotContentNameFor,
  memberVolumeSnapshotNameFor,
  volumeGroupSnapshotContentNameFor,
  volumeGroupSnapshotOwnerReference,
} from '../../../src/api/index.js';

describe('api: group snapshot names', function () {
  const uid = '6f1c2a9e-0b7d-4e55-9a3c-1d2e3f405162';
  const handle = 'd-bp1abc';
  // sha256sum of the UID followed by the handle, computed outside this code base.
  const digest = 'c46afa68a68c28f584e1c4c25af18dbbfd9518110f5f6953f1d13c81a6570803';

  it('names the content of a dynamic group snapshot groupsnapcontent-<uid>', function () {
    expect(volumeGroupSnapshotContentNameFor(uid)).to.equal(`groupsnapcontent-${uid}`);
  });

  it("names each member's VolumeSnapshot and content by the SHA-256 of group UID + volume handle", function () {
    expect(memberVolumeSnapshotNameFor(uid, handle)).to.equal(`snapshot-${digest}`);
    expect(memberVolumeSnapshotContentNameFor(uid, handle)).to.equal(`snapcontent-${digest}`);
    // a valid object name: at most 253 characters of a DNS subdomain
    expect(memberVolumeSnapshotContentNameFor(uid, handle)).to.match(/^[a-z0-9-]{1,253}$/);
    expect(memberVolumeSnapshotNameFor(uid, 'd-other')).to.not.equal(
      memberVolumeSnapshotNameFor(uid, handle),
    );
  });

  it('points a member at its group with a plain (non-controller) owner reference', function () {
    expect(volumeGroupSnapshotOwnerReference({ metadata: { name: 'db', uid } })).to.deep.equal({
      apiVersion: 'groupsnapshot.storage.k8s.io/v1',
      kind: 'VolumeGroupSnapshot',
      name: 'db',
      uid,
    });
  });

  it('spells the annotations, finalizers and parameters as the upstream stack does', function () {
    expect(GROUP_SNAPSHOT_API_VERSION).to.equal('groupsnapshot.storage.k8s.io/v1');
    expect(ANN_VOLUME_GROUP_SNAPSHOT_HANDLE).to.equal(
      'groupsnapshot.storage.k8s.io/volumeGroupSnapshotHandle',
    );
    expect(FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND).to.equal(
      'groupsnapshot.storage.kubernetes.io/volumegroupsnapshotcontent-bound-protection',
    );
    expect(FINALIZER_VOLUME_GROUP_SNAPSHOT_BOUND).to.equal(
      'groupsnapshot.storage.kubernetes.io/volumegroupsnapshot-bound-protection',
    );
    expect(PARAM_VOLUME_GROUP_SNAPSHOT_NAME).to.equal(
      'csi.storage.k8s.io/volumegroupsnapshot/name',
    );
  });
});
