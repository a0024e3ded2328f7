import { expect } from 'chai';
import {
  ANN_GROUP_DELETION_SECRET_NAME,
  ANN_GROUP_DELETION_SECRET_NAMESPACE,
  ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED,
  ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED,
  ANN_VOLUME_GROUP_SNAPSHOT_HANDLE,
  FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND,
  PARAM_GROUP_SNAPSHOTTER_GET_SECRET_NAME,
  PARAM_GROUP_SNAPSHOTTER_GET_SECRET_NAMESPACE,
  PARAM_GROUP_SNAPSHOTTER_SECRET_NAME,
  PARAM_GROUP_SNAPSHOTTER_SECRET_NAMESPACE,
  PARAM_VOLUME_GROUP_SNAPSHOT_CONTENT_NAME,
  PARAM_VOLUME_GROUP_SNAPSHOT_NAME,
  PARAM_VOLUME_GROUP_SNAPSHOT_NAMESPACE,
  type VolumeGroupSnapshotClass,
  type VolumeGroupSnapshotContent,
} from '../../../../src/api/group-snapshot.js';
import { FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND } from '../../../../src/api/snapshot.js';
import {
  DEFAULT_GROUP_SIDECAR_SETTINGS,
  REASON_GROUP_CHECK_FAILED,
  REASON_GROUP_CREATION_FAILED,
  REASON_GROUP_DELETE_ERROR,
  GROUP_SNAPSHOT_CONTENT,
  groupGetSecretRef,
  groupReportOf,
  groupStatusAfterReport,
  isGroupMember,
  planGroupSnapshotContent,
  type GroupContentPlan,
  type GroupSnapshotReport,
} from '../../../../src/snapshot/sidecar/group-plan.js';

import {
  DEFAULT_SIDECAR_SETTINGS,
  planContent,
  type SidecarSettings,
} from '../../../../src/snapshot/sidecar/plan.js';
import { buildContent } from '../../../support/fixtures.js';
import {
  buildGroupClass,
  buildGroupContent,
  type GroupContentOptions,
} from '../../../support/group-fixtures.js';

const DRIVER = 'local.snapback.dev';
const UID = '7d2e5c11-aaaa-bbbb-cccc-ddddeeeeffff';
const NAME = `groupsnapcontent-${UID}`;
const settings: SidecarSettings = { ...DEFAULT_GROUP_SIDECAR_SETTINGS, driverName: DRIVER };
const NOW = new Date('2026-03-01T10:00:00.250Z');

function groupClass(parameters?: Record<string, string>): VolumeGroupSnapshotClass {
  return buildGroupClass({ name: 'group', driver: DRIVER, parameters });
}

function content(options: Partial<GroupContentOptions> = {}): VolumeGroupSnapshotContent {
  return buildGroupContent({
    name: NAME,
    driver: DRIVER,
    groupRef: { name: 'nightly', namespace: 'apps', uid: UID },
    className: 'group',
    volumeHandles: options.groupSnapshotHandles ? undefined : ['vol-a', 'vol-b'],
    finalizers: [FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND],
    ...options,
  });
}

const cut = {
  volumeGroupSnapshotHandle: 'group-1',
  readyToUse: false,
  creationTime: '2026-03-01T09:59:00Z',
  volumeSnapshotInfoList: [
    { volumeHandle: 'vol-a', snapshotHandle: 'snap-a', readyToUse: false },
    { volumeHandle: 'vol-b', snapshotHandle: 'snap-b', readyToUse: false },
  ],
};
const preProvisioned = {
  volumeGroupSnapshotHandle: 'group-pre',
  volumeSnapshotHandles: ['snap-x', 'snap-y'],
};
const secretAnnotations = {
  [ANN_GROUP_DELETION_SECRET_NAME]: 'group-creds',
  [ANN_GROUP_DELETION_SECRET_NAMESPACE]: 'storage',
};

const released = (content: VolumeGroupSnapshotContent) =>
  GROUP_SNAPSHOT_CONTENT.mayRelease(content);
const needsSync = (previous: VolumeGroupSnapshotContent, next: VolumeGroupSnapshotContent) =>
  GROUP_SNAPSHOT_CONTENT.changeNeedsSync(previous, next);

describe('sidecar group plan', function () {
  describe('planGroupSnapshotContent', function () {
    const cases: Array<{
      name: string;
      content: VolumeGroupSnapshotContent;
      class?: VolumeGroupSnapshotClass;
      settings?: SidecarSettings;
      expect: Partial<GroupContentPlan> & Record<string, unknown>;
    }> = [
      {
        name: 'another driver: not ours',
        content: content({ driver: 'other.csi.example.com' }),
        class: groupClass(),
        expect: { action: 'notOurs' },
      },
      {
        name: 'a class of another driver: not ours',
        content: content(),
        class: buildGroupClass({ name: 'group', driver: 'other.csi.example.com' }),
        expect: { action: 'notOurs' },
      },
      {
        name: 'no source at all: not ours',
        content: content({ volumeHandles: [] }),
        class: groupClass(),
        expect: { action: 'notOurs' },
      },
      {
        name: 'dynamic, first sync: CreateVolumeGroupSnapshot named groupsnapshot-<group uid>',
        content: content({ annotations: secretAnnotations }),
        class: groupClass({
          consistency: 'crash',
          [PARAM_GROUP_SNAPSHOTTER_SECRET_NAME]: 'group-creds',
          [PARAM_GROUP_SNAPSHOTTER_SECRET_NAMESPACE]: 'storage',
        }),
        expect: {
          action: 'createGroupSnapshot',
          failureReason: REASON_GROUP_CREATION_FAILED,
          call: {
            name: `groupsnapshot-${UID}`,
            sourceVolumeIds: ['vol-a', 'vol-b'],
            parameters: { consistency: 'crash' },
            secretRef: { name: 'group-creds', namespace: 'storage' },
          },
        },
      },
      {
        name: 'extra create metadata: the group, its namespace and the content are passed',
        content: content(),
        class: groupClass({ consistency: 'crash' }),
        settings: { ...settings, extraCreateMetadata: true },
        expect: {
          action: 'createGroupSnapshot',
          call: {
            name: `groupsnapshot-${UID}`,
            sourceVolumeIds: ['vol-a', 'vol-b'],
            parameters: {
              consistency: 'crash',
              [PARAM_VOLUME_GROUP_SNAPSHOT_NAME]: 'nightly',
              [PARAM_VOLUME_GROUP_SNAPSHOT_NAMESPACE]: 'apps',
              [PARAM_VOLUME_GROUP_SNAPSHOT_CONTENT_NAME]: NAME,
            },
            secretRef: undefined,
          },
        },
      },
      {
        name: 'dynamic without a class: creation fails with upstream message',
        content: content({ className: undefined }),
        expect: {
          action: 'fail',
          reason: REASON_GROUP_CREATION_FAILED,
          message:
            `Failed to create group snapshot: failed to get input parameters to create group ` +
            `snapshot for group snapshot content ${NAME}: failed to take group snapshot ${NAME} ` +
            'without a group snapshot class',
        },
      },
      {
        name: 'dynamic, class gone: creation fails naming it',
        content: content(),
        expect: { action: 'fail', reason: REASON_GROUP_CREATION_FAILED },
      },
      {
        name: 'an unknown reserved parameter: creation fails',
        content: content(),
        class: groupClass({ 'csi.storage.k8s.io/not-a-key': 'x' }),
        expect: { action: 'fail', reason: REASON_GROUP_CREATION_FAILED },
      },
      {
        name: 'a content not bound to its group yet (no uid): creation fails',
        content: content({ groupRef: { name: 'nightly', namespace: 'apps' } }),
        class: groupClass(),
        expect: { action: 'fail', reason: REASON_GROUP_CREATION_FAILED },
      },
      {
        name: 'a failed first call left only an error: the same Create again, as a check',
        content: content({ status: { readyToUse: false, error: { message: 'boom' } } }),
        class: groupClass(),
        expect: {
          action: 'createGroupSnapshot',
          failureReason: REASON_GROUP_CHECK_FAILED,
        },
      },
      {
        name: 'cut, not ready: GetVolumeGroupSnapshot with every member id',
        content: content({ status: cut, annotations: secretAnnotations }),
        class: groupClass(),
        expect: {
          action: 'getGroupSnapshot',
          call: {
            groupSnapshotId: 'group-1',
            snapshotIds: ['snap-a', 'snap-b'],
            secretRef: { name: 'group-creds', namespace: 'storage' },
          },
        },
      },
      {
        name: 'cut, not ready, the class names a get secret: that one is used',
        content: content({ status: cut, annotations: secretAnnotations }),
        class: groupClass({
          [PARAM_GROUP_SNAPSHOTTER_GET_SECRET_NAME]: 'get-${volumegroupsnapshotcontent.name}',
          [PARAM_GROUP_SNAPSHOTTER_GET_SECRET_NAMESPACE]: 'storage',
        }),
        expect: {
          action: 'getGroupSnapshot',
          call: {
            groupSnapshotId: 'group-1',
            snapshotIds: ['snap-a', 'snap-b'],
            secretRef: { name: `get-${NAME}`, namespace: 'storage' },
          },
        },
      },
      {
        name: 'ready: nothing to do',
        content: content({ status: { ...cut, readyToUse: true } }),
        class: groupClass(),
        expect: { action: 'upToDate' },
      },
      {
        name: 'ready with a leftover being-created annotation: it goes',
        content: content({
          status: { ...cut, readyToUse: true },
          annotations: { [ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED]: 'yes' },
        }),
        class: groupClass(),
        expect: { action: 'removeBeingCreated' },
      },
      {
        name: 'pre-provisioned: GetVolumeGroupSnapshot by its handles, no class needed',
        content: content({ className: undefined, groupSnapshotHandles: preProvisioned }),
        expect: {
          action: 'getGroupSnapshot',
          call: {
            groupSnapshotId: 'group-pre',
            snapshotIds: ['snap-x', 'snap-y'],
            secretRef: undefined,
          },
        },
      },
      {
        name: 'pre-provisioned naming a class that is gone: check fails',
        content: content({ groupSnapshotHandles: preProvisioned }),
        expect: { action: 'fail', reason: REASON_GROUP_CHECK_FAILED },
      },
      {
        name: 'pre-provisioned with a get-secret template it cannot resolve: check fails',
        content: content({ groupSnapshotHandles: preProvisioned }),
        class: groupClass({
          [PARAM_GROUP_SNAPSHOTTER_GET_SECRET_NAME]: '${volumegroupsnapshot.name}',
          [PARAM_GROUP_SNAPSHOTTER_GET_SECRET_NAMESPACE]: 'storage',
        }),
        expect: { action: 'fail', reason: REASON_GROUP_CHECK_FAILED },
      },
      {
        name: 'deleted with policy Delete: DeleteVolumeGroupSnapshot with the members and the deletion secret',
        content: content({
          deletionTimestamp: '2026-03-01T10:00:00Z',
          annotations: { ...secretAnnotations, [ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED]: 'yes' },
          status: { ...cut, readyToUse: true },
        }),
        class: groupClass(),
        expect: {
          action: 'deleteGroupSnapshot',
          call: {
            groupSnapshotId: 'group-1',
            snapshotIds: ['snap-a', 'snap-b'],
            secretRef: { name: 'group-creds', namespace: 'storage' },
          },
        },
      },
      {
        name: 'pre-provisioned, deleted: the spec lists the members to delete',
        content: content({
          groupSnapshotHandles: preProvisioned,
          deletionTimestamp: '2026-03-01T10:00:00Z',
          annotations: { [ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED]: 'yes' },
          status: { volumeGroupSnapshotHandle: 'group-pre', readyToUse: true },
        }),
        class: groupClass(),
        expect: {
          action: 'deleteGroupSnapshot',
          call: {
            groupSnapshotId: 'group-pre',
            snapshotIds: ['snap-x', 'snap-y'],
            secretRef: undefined,
          },
        },
      },
      {
        name: 'deleted with policy Retain: only the finalizer goes',
        content: content({
          deletionPolicy: 'Retain',
          deletionTimestamp: '2026-03-01T10:00:00Z',
          annotations: { [ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED]: 'yes' },
          status: { ...cut, readyToUse: true },
        }),
        class: groupClass(),
        expect: { action: 'removeFinalizer' },
      },
      {
        name: 'deleted, the group already gone from the backend: the finalizer goes',
        content: content({
          deletionTimestamp: '2026-03-01T10:00:00Z',
          annotations: { [ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED]: 'yes' },
          status: { volumeSnapshotInfoList: cut.volumeSnapshotInfoList },
        }),
        class: groupClass(),
        expect: { action: 'removeFinalizer' },
      },
      {
        name: 'deleted and released already: nothing',
        content: content({
          finalizers: [],
          deletionTimestamp: '2026-03-01T10:00:00Z',
          annotations: { [ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED]: 'yes' },
        }),
        class: groupClass(),
        expect: { action: 'upToDate' },
      },
      {
        name: 'deleted with an empty deletion secret annotation: delete fails',
        content: content({
          deletionTimestamp: '2026-03-01T10:00:00Z',
          annotations: {
            [ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED]: 'yes',
            [ANN_GROUP_DELETION_SECRET_NAME]: '',
            [ANN_GROUP_DELETION_SECRET_NAMESPACE]: 'storage',
          },
          status: { ...cut, readyToUse: true },
        }),
        class: groupClass(),
        expect: { action: 'fail', reason: REASON_GROUP_DELETE_ERROR },
      },
      {
        name: 'deletion timestamp while a Create may be in flight: the call goes on, no delete',
        content: content({
          deletionTimestamp: '2026-03-01T10:00:00Z',
          annotations: {
            [ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED]: 'yes',
            [ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED]: 'yes',
          },
          status: cut,
        }),
        class: groupClass(),
        expect: { action: 'getGroupSnapshot' },
      },
    ];

    for (const testCase of cases) {
      it(testCase.name, function () {
        const plan = planGroupSnapshotContent(
          testCase.content,
          testCase.class,
          testCase.settings ?? settings,
        );
        expect(plan).to.deep.include(testCase.expect);
      });
    }
  });

  describe('mayRelease', function () {
    it('needs a deletion timestamp', function () {
      const annotations = { [ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED]: 'yes' };
      expect(released(content({ annotations }))).to.equal(false);
      expect(released(content({ annotations, deletionTimestamp: NOW.toISOString() }))).to.equal(
        true,
      );
    });

    it('an unbound pre-provisioned content goes without the being-deleted annotation', function () {
      const unbound = content({
        groupSnapshotHandles: preProvisioned,
        groupRef: { name: 'nightly', namespace: 'apps' },
        deletionTimestamp: NOW.toISOString(),
      });
      expect(released(unbound)).to.equal(true);
      expect(released(content({ deletionTimestamp: NOW.toISOString() }))).to.equal(false);
    });
  });

  it('GROUP_SNAPSHOT_CONTENT.createName follows the prefix and UUID length flags', function () {
    expect(GROUP_SNAPSHOT_CONTENT.createName(UID, settings)).to.equal(`groupsnapshot-${UID}`);
    expect(
      GROUP_SNAPSHOT_CONTENT.createName(UID, {
        ...settings,
        namePrefix: 'g',
        nameUuidLength: 8,
      }),
    ).to.equal('g-7d2e5c11');
    expect(() => GROUP_SNAPSHOT_CONTENT.createName('', settings)).to.throw('missing UID');
  });

  it("GROUP_SNAPSHOT_CONTENT's sidecar parameters: every sidecar key goes, unknown reserved ones are refused", function () {
    expect(
      GROUP_SNAPSHOT_CONTENT.withoutReservedParameters({
        a: '1',
        [PARAM_GROUP_SNAPSHOTTER_SECRET_NAME]: 's',
        [PARAM_GROUP_SNAPSHOTTER_SECRET_NAMESPACE]: 'n',
        [PARAM_GROUP_SNAPSHOTTER_GET_SECRET_NAME]: 's',
        [PARAM_GROUP_SNAPSHOTTER_GET_SECRET_NAMESPACE]: 'n',
        'csi.storage.k8s.io/snapshotter-list-secret-name': 'l',
      }),
    ).to.deep.equal({ a: '1' });
    expect(() =>
      GROUP_SNAPSHOT_CONTENT.withoutReservedParameters({ 'csi.storage.k8s.io/fstype': 'ext4' }),
    ).to.throw('found unknown parameter key "csi.storage.k8s.io/fstype"');
  });

  it('groupGetSecretRef needs both keys and a valid result', function () {
    expect(groupGetSecretRef(undefined, NAME)).to.equal(undefined);
    expect(() =>
      groupGetSecretRef(groupClass({ [PARAM_GROUP_SNAPSHOTTER_GET_SECRET_NAME]: 'x' }), NAME),
    ).to.throw('must be set together');
    expect(() =>
      groupGetSecretRef(
        groupClass({
          [PARAM_GROUP_SNAPSHOTTER_GET_SECRET_NAME]: 'x',
          [PARAM_GROUP_SNAPSHOTTER_GET_SECRET_NAMESPACE]: 'Not_A_Namespace',
        }),
        NAME,
      ),
    ).to.throw('not a valid namespace name');
    for (const template of [
      '${volumegroupsnapshot.name}',
      'get-${volumegroupsnapshotcontent.name',
    ]) {
      expect(
        () =>
          groupGetSecretRef(
            groupClass({
              [PARAM_GROUP_SNAPSHOTTER_GET_SECRET_NAME]: template,
              [PARAM_GROUP_SNAPSHOTTER_GET_SECRET_NAMESPACE]: 'storage',
            }),
            NAME,
          ),
        template,
      ).to.throw('only ${volumegroupsnapshotcontent.name} is available');
    }
  });

  describe('groupReportOf', function () {
    it('maps the driver message, times in ms for the group and ns for members', function () {
      const report = groupReportOf({
        group_snapshot_id: 'group-1',
        ready_to_use: true,
        creation_time: { seconds: '1772359200', nanos: 500_000_000 },
        snapshots: [
          {
            snapshot_id: 'snap-a',
            source_volume_id: 'vol-a',
            ready_to_use: true,
            size_bytes: '1073741824',
            creation_time: { seconds: '1772359200', nanos: 0 },
            group_snapshot_id: 'group-1',
          },
          {
            snapshot_id: 'snap-b',
            source_volume_id: 'vol-b',
            ready_to_use: false,
            size_bytes: '0',
            creation_time: null,
            group_snapshot_id: 'group-1',
          },
        ],
      });
      expect(report.creationTime?.toISOString()).to.equal('2026-03-01T10:00:00.500Z');
      expect(report.members).to.deep.equal([
        {
          volumeHandle: 'vol-a',
          snapshotHandle: 'snap-a',
          readyToUse: true,
          creationTimeNs: 1772359200 * 1e9,
          sizeBytes: 1073741824,
        },
        {
          volumeHandle: 'vol-b',
          snapshotHandle: 'snap-b',
          readyToUse: false,
          creationTimeNs: undefined,
          sizeBytes: 0,
        },
      ]);
    });

    it('a zero creation time counts as not reported', function () {
      const report = groupReportOf({
        group_snapshot_id: 'g',
        ready_to_use: false,
        creation_time: { seconds: '0', nanos: 0 },
        snapshots: [],
      });
      expect(report.creationTime).to.equal(undefined);
    });
  });

  describe('groupStatusAfterReport', function () {
    const report: GroupSnapshotReport = {
      groupSnapshotId: 'group-1',
      readyToUse: false,
      creationTime: new Date('2026-03-01T09:59:00.700Z'),
      members: [
        {
          volumeHandle: 'vol-a',
          snapshotHandle: 'snap-a',
          readyToUse: false,
          sizeBytes: 1024,
          creationTimeNs: 5,
        },
        { volumeHandle: 'vol-b', snapshotHandle: 'snap-b', readyToUse: false, sizeBytes: 0 },
      ],
    };

    it('the first answer sets handle, RFC 3339 time, readiness and the member list', function () {
      expect(groupStatusAfterReport(undefined, report, NOW)).to.deep.equal({
        volumeGroupSnapshotHandle: 'group-1',
        readyToUse: false,
        creationTime: '2026-03-01T09:59:00Z',
        volumeSnapshotInfoList: [
          {
            volumeHandle: 'vol-a',
            snapshotHandle: 'snap-a',
            readyToUse: false,
            creationTime: 5,
            restoreSize: 1024,
          },
          { volumeHandle: 'vol-b', snapshotHandle: 'snap-b', readyToUse: false },
        ],
      });
    });

    it('a driver without a time: the time it was told', function () {
      const status = groupStatusAfterReport(undefined, { ...report, creationTime: undefined }, NOW);
      expect(status?.creationTime).to.equal('2026-03-01T10:00:00Z');
    });

    it('the same answer again changes nothing', function () {
      const first = groupStatusAfterReport(undefined, report, NOW);
      expect(groupStatusAfterReport(first, report, NOW)).to.equal(undefined);
    });

    it('turning ready clears the error and refreshes the listed members', function () {
      const first = groupStatusAfterReport(undefined, report, NOW)!;
      const failed = { ...first, error: { message: 'slow', time: '2026-03-01T09:59:30Z' } };
      const ready: GroupSnapshotReport = {
        ...report,
        readyToUse: true,
        creationTime: new Date('2026-03-01T09:59:59Z'),
        members: report.members.map((m) => ({ ...m, readyToUse: true, sizeBytes: 2048 })),
      };
      const next = groupStatusAfterReport(failed, ready, NOW)!;
      expect(next.error).to.equal(undefined);
      expect(next.readyToUse).to.equal(true);
      // the first time stays, as do sizes already known
      expect(next.creationTime).to.equal('2026-03-01T09:59:00Z');
      expect(next.volumeSnapshotInfoList).to.deep.equal([
        {
          volumeHandle: 'vol-a',
          snapshotHandle: 'snap-a',
          readyToUse: true,
          creationTime: 5,
          restoreSize: 1024,
        },
        { volumeHandle: 'vol-b', snapshotHandle: 'snap-b', readyToUse: true, restoreSize: 2048 },
      ]);
    });

    it('an error status gains the handle and members from a later answer', function () {
      const next = groupStatusAfterReport(
        { readyToUse: false, error: { message: 'boom' } },
        report,
        NOW,
      )!;
      expect(next.volumeGroupSnapshotHandle).to.equal('group-1');
      expect(next.volumeSnapshotInfoList).to.have.length(2);
      expect(next.error).to.deep.equal({ message: 'boom' });
    });
  });

  it('statusWithError records a message once and can keep readiness', function () {
    const ready = { volumeGroupSnapshotHandle: 'g', readyToUse: true };
    const failed = GROUP_SNAPSHOT_CONTENT.statusWithError(ready, 'no', NOW)!;
    expect(failed).to.deep.equal({
      volumeGroupSnapshotHandle: 'g',
      readyToUse: false,
      error: { message: 'no', time: '2026-03-01T10:00:00Z' },
    });
    expect(GROUP_SNAPSHOT_CONTENT.statusWithError(failed, 'no', NOW)).to.equal(undefined);
    expect(
      GROUP_SNAPSHOT_CONTENT.statusWithError(ready, 'no', NOW, { keepReadyToUse: true })
        ?.readyToUse,
    ).to.equal(true);
  });

  it('statusAfterRelease clears what referred to the group, keeping the member list', function () {
    expect(
      GROUP_SNAPSHOT_CONTENT.statusAfterRelease({ ...cut, error: { message: 'refused' } }),
    ).to.deep.equal({
      volumeSnapshotInfoList: cut.volumeSnapshotInfoList,
    });
    expect(GROUP_SNAPSHOT_CONTENT.statusAfterRelease(undefined)).to.equal(undefined);
  });

  describe('contentChangeNeedsSync', function () {
    const before = content({ status: cut, annotations: {} });
    it('ignores the sidecar own writes', function () {
      const after: VolumeGroupSnapshotContent = {
        ...before,
        metadata: {
          ...before.metadata,
          resourceVersion: '2',
          finalizers: [],
          annotations: { [ANN_VOLUME_GROUP_SNAPSHOT_BEING_CREATED]: 'yes' },
        },
        status: { ...cut, error: { message: 'x' } },
      };
      expect(needsSync(before, after)).to.equal(false);
    });

    it('wakes for a deletion, the being-deleted annotation, or a status turning ready', function () {
      const deleting = {
        ...before,
        metadata: { ...before.metadata, deletionTimestamp: NOW.toISOString() },
      };
      expect(needsSync(before, deleting)).to.equal(true);
      const beingDeleted = {
        ...before,
        metadata: {
          ...before.metadata,
          annotations: { [ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED]: 'yes' },
        },
      };
      expect(needsSync(before, beingDeleted)).to.equal(true);
      const ready = { ...before, status: { ...cut, readyToUse: true } };
      expect(needsSync(before, ready)).to.equal(true);
    });
  });

  describe('a member content never gets a CreateSnapshot of its own', function () {
    const member = buildContent({
      name: 'snapcontent-member',
      driver: DRIVER,
      volumeHandle: 'vol-a',
      finalizers: [FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND],
      annotations: { [ANN_VOLUME_GROUP_SNAPSHOT_HANDLE]: 'group-1' },
      snapshotRef: { name: 'snapshot-member', namespace: 'apps', uid: 'member-uid' },
    });

    it('isGroupMember: the handle annotation (upstream check), or a group handle in the status', function () {
      expect(isGroupMember(member)).to.equal(true);
      const plain = { ...member, metadata: { ...member.metadata, annotations: {} } };
      expect(isGroupMember(plain)).to.equal(false);
      expect(
        isGroupMember({ ...plain, status: { volumeGroupSnapshotHandle: 'group-1' } }),
      ).to.equal(true);
    });

    it('the single-snapshot plan leaves a member to the group', function () {
      const plan = planContent(member, undefined, {
        ...DEFAULT_SIDECAR_SETTINGS,
        driverName: DRIVER,
      });
      expect(plan.action).to.not.equal('createSnapshot');
      expect(plan.action).to.equal('leftToGroup');
    });
  });
});
