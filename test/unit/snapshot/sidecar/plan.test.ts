import { expect } from 'chai';
import { status as GrpcStatus } from '@grpc/grpc-js';
import {
  ANN_DELETION_SECRET_NAME,
  ANN_DELETION_SECRET_NAMESPACE,
  ANN_VOLUME_SNAPSHOT_BEING_CREATED,
  ANN_VOLUME_SNAPSHOT_BEING_DELETED,
  FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND,
  type VolumeSnapshotClass,
  type VolumeSnapshotContent,
} from '../../../../src/api/snapshot.js';
import {
  DEFAULT_SIDECAR_SETTINGS,
  REASON_CHECK_FAILED,
  REASON_CREATION_FAILED,
  REASON_DELETE_ERROR,
  SNAPSHOT_CONTENT,
  createFailedMessage,
  isFinalCsiError,
  listSecretRef,
  planContent,
  statusAfterReport,
  type ContentPlan,
  type SidecarSettings,
} from '../../../../src/snapshot/sidecar/plan.js';

import { ANN_VOLUME_GROUP_SNAPSHOT_HANDLE } from '../../../../src/snapshot/group.js';
import { messageOf } from '../../../../src/csi/status.js';

const DRIVER = 'local.snapback.dev';
const settings: SidecarSettings = { ...DEFAULT_SIDECAR_SETTINGS, driverName: DRIVER };
const UID = '3f1c2b7e-1111-2222-3333-444455556666';

function snapshotClass(overrides: Partial<VolumeSnapshotClass> = {}): VolumeSnapshotClass {
  return {
    apiVersion: 'snapshot.storage.k8s.io/v1',
    kind: 'VolumeSnapshotClass',
    metadata: { name: 'local' },
    driver: DRIVER,
    deletionPolicy: 'Delete',
    parameters: { forceDelete: 'false' },
    ...overrides,
  };
}

interface ContentShape {
  driver?: string;
  volumeHandle?: string;
  snapshotHandle?: string;
  refUid?: string;
  className?: string | null;
  policy?: 'Delete' | 'Retain';
  annotations?: Record<string, string>;
  finalizers?: string[];
  deleting?: boolean;
  status?: VolumeSnapshotContent['status'];
}

function content(shape: ContentShape = {}): VolumeSnapshotContent {
  const source =
    shape.snapshotHandle !== undefined
      ? { snapshotHandle: shape.snapshotHandle }
      : { volumeHandle: shape.volumeHandle ?? 'vol-1' };
  return {
    apiVersion: 'snapshot.storage.k8s.io/v1',
    kind: 'VolumeSnapshotContent',
    metadata: {
      name: `snapcontent-${UID}`,
      resourceVersion: '10',
      annotations: shape.annotations,
      finalizers: shape.finalizers ?? [FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND],
      deletionTimestamp: shape.deleting ? new Date('2026-01-01T00:00:00Z') : undefined,
    },
    spec: {
      driver: shape.driver ?? DRIVER,
      deletionPolicy: shape.policy ?? 'Delete',
      volumeSnapshotClassName: shape.className === null ? undefined : (shape.className ?? 'local'),
      volumeSnapshotRef: { name: 'snap', namespace: 'ns', uid: shape.refUid ?? UID },
      source,
    },
    status: shape.status,
  };
}

const beingDeleted = { [ANN_VOLUME_SNAPSHOT_BEING_DELETED]: 'yes' };
const beingCreated = { [ANN_VOLUME_SNAPSHOT_BEING_CREATED]: 'yes' };
const groupMember = { [ANN_VOLUME_GROUP_SNAPSHOT_HANDLE]: 'group-1' };
const readyStatus = { snapshotHandle: 'snap-1', readyToUse: true, creationTime: 1, restoreSize: 5 };

const released = (content: VolumeSnapshotContent) => SNAPSHOT_CONTENT.mayRelease(content);
const needsSync = (previous: VolumeSnapshotContent, next: VolumeSnapshotContent) =>
  SNAPSHOT_CONTENT.changeNeedsSync(previous, next);

describe('sidecar plan', function () {
  describe('planContent', function () {
    const cases: Array<{
      name: string;
      content: VolumeSnapshotContent;
      class?: VolumeSnapshotClass;
      expect: Partial<ContentPlan> & { action: ContentPlan['action'] };
    }> = [
      {
        name: 'another driver: not ours',
        content: content({ driver: 'other.csi.dev' }),
        class: snapshotClass(),
        expect: { action: 'notOurs' },
      },
      {
        name: 'a class of another driver: not ours',
        content: content(),
        class: snapshotClass({ driver: 'other.csi.dev' }),
        expect: { action: 'notOurs' },
      },
      {
        name: 'no source at all: not ours',
        content: { ...content(), spec: { ...content().spec, source: {} } },
        class: snapshotClass(),
        expect: { action: 'notOurs' },
      },
      {
        name: 'new dynamic content: CreateSnapshot named snapshot-<uid>',
        content: content(),
        class: snapshotClass(),
        expect: {
          action: 'createSnapshot',
          failureReason: REASON_CREATION_FAILED,
          call: {
            name: `snapshot-${UID}`,
            sourceVolumeId: 'vol-1',
            parameters: { forceDelete: 'false' },
            secretRef: undefined,
          },
        },
      },
      {
        name: 'cut but not ready: CreateSnapshot again with the same name (poll)',
        content: content({ status: { snapshotHandle: 'snap-1', readyToUse: false } }),
        class: snapshotClass(),
        expect: {
          action: 'createSnapshot',
          failureReason: REASON_CHECK_FAILED,
          call: {
            name: `snapshot-${UID}`,
            sourceVolumeId: 'vol-1',
            parameters: { forceDelete: 'false' },
            secretRef: undefined,
          },
        },
      },
      {
        name: 'a failed first attempt is retried by CreateSnapshot',
        content: content({ status: { readyToUse: false, error: { message: 'boom' } } }),
        class: snapshotClass(),
        expect: { action: 'createSnapshot', failureReason: REASON_CHECK_FAILED },
      },
      {
        name: 'ready: nothing to call',
        content: content({ status: readyStatus }),
        class: snapshotClass(),
        expect: { action: 'upToDate' },
      },
      {
        name: 'ready with a leftover being-created annotation: remove it',
        content: content({ status: readyStatus, annotations: beingCreated }),
        class: snapshotClass(),
        expect: { action: 'removeBeingCreated' },
      },
      {
        name: 'dynamic content without a class: fails with the reason',
        content: content({ className: null }),
        expect: { action: 'fail', reason: REASON_CREATION_FAILED },
      },
      {
        name: 'a class that does not exist: fails naming it',
        content: content({ className: 'gone' }),
        expect: { action: 'fail', reason: REASON_CREATION_FAILED },
      },
      {
        name: 'an unknown reserved class parameter: fails',
        content: content(),
        class: snapshotClass({ parameters: { 'csi.storage.k8s.io/bogus': 'x' } }),
        expect: { action: 'fail', reason: REASON_CREATION_FAILED },
      },
      {
        name: 'pre-provisioned and not ready: ListSnapshots by handle',
        content: content({ snapshotHandle: 'snap-9', className: null }),
        expect: { action: 'checkSnapshot', snapshotId: 'snap-9', secretRef: undefined },
      },
      {
        name: 'deleted with policy Delete and a handle: DeleteSnapshot',
        content: content({
          deleting: true,
          annotations: beingDeleted,
          status: readyStatus,
        }),
        class: snapshotClass(),
        expect: { action: 'deleteSnapshot', snapshotId: 'snap-1', secretRef: undefined },
      },
      {
        name: 'deleted with policy Delete, handle already cleared: drop the finalizer',
        content: content({ deleting: true, annotations: beingDeleted, status: {} }),
        class: snapshotClass(),
        expect: { action: 'removeFinalizer' },
      },
      {
        name: 'deleted with policy Retain: drop the finalizer, keep the backend snapshot',
        content: content({
          deleting: true,
          annotations: beingDeleted,
          policy: 'Retain',
          status: readyStatus,
        }),
        class: snapshotClass(),
        expect: { action: 'removeFinalizer' },
      },
      {
        name: 'deleted while a CreateSnapshot may be in flight: keep creating, no delete',
        content: content({
          deleting: true,
          annotations: { ...beingDeleted, ...beingCreated },
          status: { snapshotHandle: 'snap-1', readyToUse: false },
        }),
        class: snapshotClass(),
        expect: { action: 'createSnapshot' },
      },
      {
        name: 'deleted but its VolumeSnapshot is not being deleted: no delete',
        content: content({ deleting: true, status: readyStatus }),
        class: snapshotClass(),
        expect: { action: 'upToDate' },
      },
      {
        name: 'an unbound pre-provisioned content deleted: DeleteSnapshot',
        content: content({
          deleting: true,
          snapshotHandle: 'snap-9',
          refUid: '',
          className: null,
          status: { snapshotHandle: 'snap-9', readyToUse: true },
        }),
        expect: { action: 'deleteSnapshot', snapshotId: 'snap-9' },
      },
      {
        name: 'deleted, finalizer already gone: nothing to do',
        content: content({
          deleting: true,
          annotations: beingDeleted,
          finalizers: [],
          policy: 'Retain',
        }),
        class: snapshotClass(),
        expect: { action: 'upToDate' },
      },
      {
        name: 'delete with deletion-secret annotations: passes the Secret',
        content: content({
          deleting: true,
          status: readyStatus,
          annotations: {
            ...beingDeleted,
            [ANN_DELETION_SECRET_NAME]: 'creds',
            [ANN_DELETION_SECRET_NAMESPACE]: 'kube-system',
          },
        }),
        class: snapshotClass(),
        expect: {
          action: 'deleteSnapshot',
          snapshotId: 'snap-1',
          secretRef: { name: 'creds', namespace: 'kube-system' },
        },
      },
      {
        name: 'delete with an empty deletion-secret annotation: fails',
        content: content({
          deleting: true,
          status: readyStatus,
          annotations: {
            ...beingDeleted,
            [ANN_DELETION_SECRET_NAME]: '',
            [ANN_DELETION_SECRET_NAMESPACE]: 'kube-system',
          },
        }),
        class: snapshotClass(),
        expect: { action: 'fail', reason: REASON_DELETE_ERROR },
      },
      {
        name: 'group member not cut yet: no CreateSnapshot of its own, even without a class',
        content: content({ className: null, annotations: groupMember }),
        expect: { action: 'leftToGroup' },
      },
      {
        name: 'group member the group recorded without a member handle: still left to the group',
        content: content({
          className: null,
          annotations: groupMember,
          status: { volumeGroupSnapshotHandle: 'group-1', readyToUse: false },
        }),
        expect: { action: 'leftToGroup' },
      },
      {
        name: 'a group handle in the status alone also marks a member: no CreateSnapshot',
        content: content({
          status: { volumeGroupSnapshotHandle: 'group-1', readyToUse: false },
        }),
        class: snapshotClass(),
        expect: { action: 'leftToGroup' },
      },
      {
        name: 'group member cut by the group, not ready: listed by its handle, annotated credentials',
        content: content({
          className: null,
          annotations: {
            ...groupMember,
            [ANN_DELETION_SECRET_NAME]: 'creds',
            [ANN_DELETION_SECRET_NAMESPACE]: 'kube-system',
          },
          status: {
            volumeGroupSnapshotHandle: 'group-1',
            snapshotHandle: 'm-1',
            readyToUse: false,
          },
        }),
        expect: {
          action: 'checkSnapshot',
          snapshotId: 'm-1',
          secretRef: { name: 'creds', namespace: 'kube-system' },
        },
      },
      {
        name: 'group member ready: nothing to call',
        content: content({
          className: null,
          annotations: groupMember,
          status: { volumeGroupSnapshotHandle: 'group-1', snapshotHandle: 'm-1', readyToUse: true },
        }),
        expect: { action: 'upToDate' },
      },
      {
        name: 'group member being deleted with policy Delete: released without DeleteSnapshot',
        content: content({
          className: null,
          deleting: true,
          annotations: { ...groupMember, ...beingDeleted },
          status: { volumeGroupSnapshotHandle: 'group-1', snapshotHandle: 'm-1', readyToUse: true },
        }),
        expect: { action: 'removeFinalizer' },
      },
    ];

    for (const c of cases) {
      it(c.name, function () {
        const plan = planContent(c.content, c.class, settings);
        expect(plan).to.deep.include(c.expect);
      });
    }

    it('names a missing class in the failure message', function () {
      const plan = planContent(content({ className: 'gone' }), undefined, settings);
      expect(plan.action).to.equal('fail');
      expect((plan as { message: string }).message).to.match(
        /^Failed to create snapshot: failed to get input parameters .*"gone" not found/,
      );
    });

    it('adds the names as parameters with extra create metadata', function () {
      const plan = planContent(content(), snapshotClass(), {
        ...settings,
        extraCreateMetadata: true,
      });
      expect(plan)
        .to.have.nested.property('call.parameters')
        .that.deep.equals({
          forceDelete: 'false',
          'csi.storage.k8s.io/volumesnapshot/name': 'snap',
          'csi.storage.k8s.io/volumesnapshot/namespace': 'ns',
          'csi.storage.k8s.io/volumesnapshotcontent/name': `snapcontent-${UID}`,
        });
    });
  });

  describe('mayRelease', function () {
    it('is false without a deletionTimestamp, whatever the annotations', function () {
      expect(released(content({ annotations: beingDeleted }))).to.equal(false);
    });
    it('is true once the VolumeSnapshot is being deleted and no create is in flight', function () {
      expect(released(content({ deleting: true, annotations: beingDeleted }))).to.equal(true);
    });
    it('is false while being-created is set', function () {
      const c = content({ deleting: true, annotations: { ...beingDeleted, ...beingCreated } });
      expect(released(c)).to.equal(false);
    });
  });

  describe('SNAPSHOT_CONTENT.createName', function () {
    it('is <prefix>-<uid> by default', function () {
      expect(SNAPSHOT_CONTENT.createName(UID, settings)).to.equal(`snapshot-${UID}`);
    });
    it('drops dashes and cuts the UID with a UUID length', function () {
      expect(
        SNAPSHOT_CONTENT.createName(UID, { ...settings, namePrefix: 'snap', nameUuidLength: 8 }),
      ).to.equal('snap-3f1c2b7e');
    });
    it('refuses an empty UID', function () {
      expect(() => SNAPSHOT_CONTENT.createName('', settings)).to.throw(/missing UID/);
    });
  });

  describe("SNAPSHOT_CONTENT's sidecar parameters", function () {
    it('strips the sidecar keys and keeps the driver ones', function () {
      expect(
        SNAPSHOT_CONTENT.withoutReservedParameters({
          forceDelete: 'true',
          'csi.storage.k8s.io/snapshotter-secret-name': 's',
          'csi.storage.k8s.io/snapshotter-secret-namespace': 'n',
        }),
      ).to.deep.equal({ forceDelete: 'true' });
    });
    it('rejects an unknown reserved key', function () {
      expect(() =>
        SNAPSHOT_CONTENT.withoutReservedParameters({ 'csi.storage.k8s.io/fstype': 'ext4' }),
      ).to.throw(/unknown parameter key "csi.storage.k8s.io\/fstype"/);
    });
  });

  describe('listSecretRef', function () {
    it('resolves the content name token', function () {
      const cls = snapshotClass({
        parameters: {
          'csi.storage.k8s.io/snapshotter-list-secret-name': '${volumesnapshotcontent.name}-creds',
          'csi.storage.k8s.io/snapshotter-list-secret-namespace': 'kube-system',
        },
      });
      expect(listSecretRef(cls, 'c1')).to.deep.equal({
        name: 'c1-creds',
        namespace: 'kube-system',
      });
    });
    it('rejects a token it cannot resolve', function () {
      const cls = snapshotClass({
        parameters: {
          'csi.storage.k8s.io/snapshotter-list-secret-name': '${volumesnapshot.name}',
          'csi.storage.k8s.io/snapshotter-list-secret-namespace': 'x',
        },
      });
      expect(() => listSecretRef(cls, 'c1')).to.throw(/cannot be resolved/);
    });
  });

  describe('isFinalCsiError', function () {
    const grpc = (code: GrpcStatus) => Object.assign(new Error('x'), { code, details: 'x' });
    const table: Array<[string, unknown, boolean]> = [
      ['CANCELLED', grpc(GrpcStatus.CANCELLED), false],
      ['DEADLINE_EXCEEDED', grpc(GrpcStatus.DEADLINE_EXCEEDED), false],
      ['UNAVAILABLE', grpc(GrpcStatus.UNAVAILABLE), false],
      ['RESOURCE_EXHAUSTED', grpc(GrpcStatus.RESOURCE_EXHAUSTED), false],
      ['ABORTED', grpc(GrpcStatus.ABORTED), false],
      ['INVALID_ARGUMENT', grpc(GrpcStatus.INVALID_ARGUMENT), true],
      ['NOT_FOUND', grpc(GrpcStatus.NOT_FOUND), true],
      ['ALREADY_EXISTS', grpc(GrpcStatus.ALREADY_EXISTS), true],
      ['FAILED_PRECONDITION', grpc(GrpcStatus.FAILED_PRECONDITION), true],
      ['INTERNAL', grpc(GrpcStatus.INTERNAL), true],
      ['UNKNOWN', grpc(GrpcStatus.UNKNOWN), true],
      ['a plain Error', new Error('socket closed'), false],
      [
        'a system error with a string code',
        Object.assign(new Error('x'), { code: 'ECONNRESET' }),
        false,
      ],
    ];
    for (const [name, error, final] of table) {
      it(`${name} is ${final ? 'final' : 'not final'}`, function () {
        expect(isFinalCsiError(error)).to.equal(final);
      });
    }
  });

  describe('statusAfterReport', function () {
    const now = new Date('2026-02-03T04:05:06.789Z');
    it('fills a new status, with the time it was told when the driver gave none', function () {
      expect(
        statusAfterReport(undefined, { snapshotId: 's1', readyToUse: false, sizeBytes: 0 }, now),
      ).to.deep.equal({
        snapshotHandle: 's1',
        readyToUse: false,
        creationTime: now.getTime() * 1e6,
      });
    });
    it('records the size only when the driver gave one', function () {
      const created = new Date('2026-01-01T00:00:00Z');
      expect(
        statusAfterReport(
          undefined,
          { snapshotId: 's1', readyToUse: true, sizeBytes: 1024, creationTime: created },
          now,
        ),
      ).to.deep.equal({
        snapshotHandle: 's1',
        readyToUse: true,
        creationTime: created.getTime() * 1e6,
        restoreSize: 1024,
      });
    });
    it('clears the error when the snapshot becomes ready, keeping set fields', function () {
      const current = {
        snapshotHandle: 's1',
        readyToUse: false,
        creationTime: 7,
        error: { message: 'old' },
      };
      expect(
        statusAfterReport(current, { snapshotId: 's1', readyToUse: true, sizeBytes: 2048 }, now),
      ).to.deep.equal({
        snapshotHandle: 's1',
        readyToUse: true,
        creationTime: 7,
        restoreSize: 2048,
      });
    });
    it('returns undefined when nothing changes (no write)', function () {
      expect(
        statusAfterReport(
          readyStatus,
          { snapshotId: 'snap-1', readyToUse: true, sizeBytes: 5 },
          now,
        ),
      ).to.equal(undefined);
    });
  });

  describe('statusWithError', function () {
    const now = new Date('2026-02-03T04:05:06Z');
    it('sets the error and readyToUse=false', function () {
      expect(SNAPSHOT_CONTENT.statusWithError(undefined, 'boom', now)).to.deep.equal({
        readyToUse: false,
        error: { time: now.toISOString(), message: 'boom' },
      });
    });
    it('keeps readyToUse for a refused deletion', function () {
      expect(
        SNAPSHOT_CONTENT.statusWithError(readyStatus, 'refused', now, { keepReadyToUse: true }),
      ).to.deep.include({
        readyToUse: true,
        snapshotHandle: 'snap-1',
      });
    });
    it('writes nothing when the same message is already recorded', function () {
      expect(
        SNAPSHOT_CONTENT.statusWithError({ error: { message: 'boom' } }, 'boom', now),
      ).to.equal(undefined);
    });
  });

  it('statusAfterRelease forgets the handle, readiness, time, size and error', function () {
    expect(
      SNAPSHOT_CONTENT.statusAfterRelease({
        ...readyStatus,
        error: { message: 'refused' },
        volumeGroupSnapshotHandle: 'g',
      }),
    ).to.deep.equal({ volumeGroupSnapshotHandle: 'g' });
  });

  it('messageOf keeps the gRPC code name and the driver’s reason', function () {
    const error = Object.assign(new Error('9 FAILED_PRECONDITION: has dependents'), {
      code: GrpcStatus.FAILED_PRECONDITION,
      details: 'snapshot s1 has dependent disks d1',
    });
    expect(messageOf(error)).to.equal('FAILED_PRECONDITION: snapshot s1 has dependent disks d1');
    expect(createFailedMessage(REASON_CREATION_FAILED, content(), error)).to.equal(
      'Failed to create snapshot: failed to take snapshot of the volume vol-1: ' +
        'FAILED_PRECONDITION: snapshot s1 has dependent disks d1',
    );
  });

  describe('contentChangeNeedsSync', function () {
    const base = content({ status: { readyToUse: false } });
    it('ignores status-only, finalizer-only and being-created-only changes', function () {
      expect(
        needsSync(base, {
          ...base,
          status: { readyToUse: false, snapshotHandle: 'x' },
        }),
      ).to.equal(false);
      expect(
        needsSync(base, {
          ...base,
          metadata: { ...base.metadata, finalizers: [], resourceVersion: '11' },
        }),
      ).to.equal(false);
      expect(
        needsSync(base, {
          ...base,
          metadata: { ...base.metadata, annotations: beingCreated },
        }),
      ).to.equal(false);
    });
    it('handles a readyToUse change to true', function () {
      expect(needsSync(base, { ...base, status: { readyToUse: true } })).to.equal(true);
    });
    it('handles a deletion and the being-deleted annotation', function () {
      expect(
        needsSync(base, {
          ...base,
          metadata: { ...base.metadata, deletionTimestamp: new Date() },
        }),
      ).to.equal(true);
      expect(
        needsSync(base, {
          ...base,
          metadata: { ...base.metadata, annotations: beingDeleted },
        }),
      ).to.equal(true);
    });
  });
});
