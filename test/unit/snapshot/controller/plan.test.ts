import { expect } from 'chai';
import {
  ANN_DELETION_SECRET_NAME,
  ANN_DELETION_SECRET_NAMESPACE,
  ANN_VOLUME_SNAPSHOT_BEING_DELETED,
  FINALIZER_PVC_AS_SOURCE,
  FINALIZER_VOLUME_SNAPSHOT_AS_SOURCE as AS_SOURCE,
  FINALIZER_VOLUME_SNAPSHOT_BOUND as BOUND,
  FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND,
  FINALIZER_VOLUME_SNAPSHOT_IN_GROUP as IN_GROUP,
  type VolumeSnapshot,
  type VolumeSnapshotContent,
} from '../../../../src/api/snapshot.js';
import {
  DEFAULT_CONTROLLER_SETTINGS,
  chooseDefaultClass,
  planContent,
  planPvcFinalizer,
  planSnapshot,
  restoreSourcesOf,
  snapshotterSecretRef,
  statusFromContent,
  type Plan,
  type SnapshotAction,
  type SnapshotObservation,
} from '../../../../src/snapshot/controller/plan.js';
import { content, pv, pvc, snapshot, snapshotClass } from './fixtures.js';

const now = new Date('2026-03-01T12:00:00.000Z');
const BOUND_PV = pv('pv-1', { claim: 'data' });
const BOUND_PVC = pvc('data', { volumeName: 'pv-1' });
const GOLD = snapshotClass('gold');

function observe(
  overrides: Partial<SnapshotObservation> & { contents?: VolumeSnapshotContent[] },
): SnapshotObservation {
  const contents = overrides.contents ?? [];
  return {
    snapshot: snapshot('snap', { pvc: 'data', className: 'gold' }),
    content: (name) => contents.find((candidate) => candidate.metadata.name === name),
    pvc: BOUND_PVC,
    pv: BOUND_PV,
    classes: [GOLD],
    restoringPvcs: [],
    now,
    settings: DEFAULT_CONTROLLER_SETTINGS,
    ...overrides,
  };
}

/** One line per action, to compare plans in tables. */
function summary(plan: Plan<SnapshotAction>): string[] {
  const lines = plan.actions.map((action) => {
    switch (action.type) {
      case 'setSnapshotClass':
        return `class ${action.className}`;
      case 'updateSnapshotFinalizers':
        return `finalizers ${[...action.add.map((f) => `+${short(f)}`), ...action.remove.map((f) => `-${short(f)}`)].join(' ')}`;
      case 'addPvcFinalizer':
        return `pvc-finalizer ${action.pvcName}`;
      case 'createContent':
        return `create ${action.content.metadata.name}`;
      case 'bindContent':
        return `bind ${action.contentName} uid=${action.uid}${action.className ? ` class=${action.className}` : ''}`;
      case 'annotateContentBeingDeleted':
        return `annotate-being-deleted ${action.contentName}`;
      case 'deleteContent':
        return `delete ${action.contentName}`;
      case 'patchSnapshotStatus':
        return `status ${JSON.stringify(action.status)}`;
      case 'event':
        return `${action.eventType} ${action.reason}: ${action.message}`;
    }
  });
  return plan.retry ? [...lines, `retry: ${plan.retry}`] : lines;
}

const short = (finalizer: string) =>
  finalizer === AS_SOURCE
    ? 'as-source'
    : finalizer === BOUND
      ? 'bound'
      : finalizer === IN_GROUP
        ? 'in-group'
        : finalizer;

describe('planSnapshot', function () {
  describe('dynamic snapshots', function () {
    const cases: Array<{
      name: string;
      obs: Partial<SnapshotObservation> & { contents?: VolumeSnapshotContent[] };
      expected: string[];
    }> = [
      {
        name: 'creates snapcontent-<uid>, protects the PVC and binds (class with Delete)',
        obs: {},
        expected: [
          'finalizers +as-source',
          'pvc-finalizer data',
          'create snapcontent-uid-snap',
          'Normal CreatingSnapshot: Waiting for a snapshot ns/snap to be created by the CSI driver.',
          'status {"boundVolumeSnapshotContentName":"snapcontent-uid-snap","readyToUse":false}',
        ],
      },
      {
        name: 'a Retain class gets no bound-protection finalizer',
        obs: { classes: [snapshotClass('gold', { policy: 'Retain' })] },
        expected: [
          'finalizers +as-source',
          'pvc-finalizer data',
          'create snapcontent-uid-snap',
          'Normal CreatingSnapshot: Waiting for a snapshot ns/snap to be created by the CSI driver.',
          'status {"boundVolumeSnapshotContentName":"snapcontent-uid-snap","readyToUse":false}',
        ],
      },
      {
        name: 'does not add the PVC finalizer twice',
        obs: {
          snapshot: snapshot('snap', {
            pvc: 'data',
            className: 'gold',
            finalizers: [AS_SOURCE, BOUND],
          }),
          pvc: pvc('data', { volumeName: 'pv-1', finalizers: [FINALIZER_PVC_AS_SOURCE] }),
        },
        expected: [
          'create snapcontent-uid-snap',
          'Normal CreatingSnapshot: Waiting for a snapshot ns/snap to be created by the CSI driver.',
          'status {"boundVolumeSnapshotContentName":"snapcontent-uid-snap","readyToUse":false}',
        ],
      },
      {
        name: 'waits for an unbound PVC, recording why',
        obs: { pvc: pvc('data', { phase: 'Pending' }), pv: undefined },
        expected: [
          'finalizers +as-source',
          'status {"error":{"time":"2026-03-01T12:00:00Z","message":"Failed to create snapshot content with error failed to get input parameters to create snapshot snap: \\"the PVC data is not yet bound to a PV, will not attempt to take a snapshot\\""},"readyToUse":false}',
          'Warning SnapshotContentCreationFailed: Failed to create snapshot content with error failed to get input parameters to create snapshot snap: "the PVC data is not yet bound to a PV, will not attempt to take a snapshot"',
          'retry: Failed to create snapshot content with error failed to get input parameters to create snapshot snap: "the PVC data is not yet bound to a PV, will not attempt to take a snapshot"',
        ],
      },
      {
        name: 'does not write the same error twice',
        obs: {
          snapshot: snapshot('snap', {
            pvc: 'data',
            className: 'gold',
            finalizers: [AS_SOURCE],
            status: {
              readyToUse: false,
              error: {
                message:
                  'Failed to create snapshot content with error snapshot controller failed to update snap on API server: cannot get claim from snapshot',
              },
            },
          }),
          pvc: undefined,
          pv: undefined,
        },
        expected: [
          'retry: Failed to create snapshot content with error snapshot controller failed to update snap on API server: cannot get claim from snapshot',
        ],
      },
      {
        name: 'refuses a PVC that is being deleted',
        obs: { pvc: pvc('data', { volumeName: 'pv-1', deleting: true }) },
        expected: [
          'finalizers +as-source',
          'status {"error":{"time":"2026-03-01T12:00:00Z","message":"Failed to create snapshot content with error snapshot controller failed to update data on API server: cannot add finalizer on claim because it is being deleted"},"readyToUse":false}',
          'Warning SnapshotContentCreationFailed: Failed to create snapshot content with error snapshot controller failed to update data on API server: cannot add finalizer on claim because it is being deleted',
          'retry: Failed to create snapshot content with error snapshot controller failed to update data on API server: cannot add finalizer on claim because it is being deleted',
        ],
      },
      {
        name: 'refuses a PV that is not a CSI volume',
        obs: { pv: pv('pv-1', { claim: 'data', csi: false }) },
        expected: [
          'finalizers +as-source',
          'status {"error":{"time":"2026-03-01T12:00:00Z","message":"Failed to create snapshot content with error cannot find CSI PersistentVolumeSource for volume pv-1"},"readyToUse":false}',
          'Warning SnapshotContentCreationFailed: Failed to create snapshot content with error cannot find CSI PersistentVolumeSource for volume pv-1',
          'retry: Failed to create snapshot content with error cannot find CSI PersistentVolumeSource for volume pv-1',
        ],
      },
      {
        name: 'refuses a PV bound to another claim',
        obs: { pv: pv('pv-1', { claim: 'other' }) },
        expected: [
          'finalizers +as-source',
          'status {"error":{"time":"2026-03-01T12:00:00Z","message":"Failed to create snapshot content with error failed to get input parameters to create snapshot snap: \\"claim in dataSource not bound or invalid\\""},"readyToUse":false}',
          'Warning SnapshotContentCreationFailed: Failed to create snapshot content with error failed to get input parameters to create snapshot snap: "claim in dataSource not bound or invalid"',
          'retry: Failed to create snapshot content with error failed to get input parameters to create snapshot snap: "claim in dataSource not bound or invalid"',
        ],
      },
      {
        name: 'a PVC being deleted that is already protected can still be snapshotted',
        obs: {
          snapshot: snapshot('snap', {
            pvc: 'data',
            className: 'gold',
            finalizers: [AS_SOURCE],
          }),
          pvc: pvc('data', {
            volumeName: 'pv-1',
            deleting: true,
            finalizers: [FINALIZER_PVC_AS_SOURCE],
          }),
        },
        expected: [
          'create snapcontent-uid-snap',
          'Normal CreatingSnapshot: Waiting for a snapshot ns/snap to be created by the CSI driver.',
          'status {"boundVolumeSnapshotContentName":"snapcontent-uid-snap","readyToUse":false}',
        ],
      },
      {
        name: 'bound-protection is added once the status names the content (Delete)',
        obs: {
          snapshot: snapshot('snap', {
            pvc: 'data',
            className: 'gold',
            finalizers: [AS_SOURCE],
            status: { boundVolumeSnapshotContentName: 'snapcontent-uid-snap', readyToUse: false },
          }),
          contents: [content('snapcontent-uid-snap', { snapshotUid: 'uid-snap' })],
        },
        expected: ['finalizers +bound'],
      },
      {
        name: 'a missing PVC is reported in upstream words',
        obs: {
          snapshot: snapshot('snap', { pvc: 'data', className: 'gold', finalizers: [AS_SOURCE] }),
          pvc: undefined,
          pv: undefined,
        },
        expected: [
          'status {"error":{"time":"2026-03-01T12:00:00Z","message":"Failed to create snapshot content with error snapshot controller failed to update snap on API server: cannot get claim from snapshot"},"readyToUse":false}',
          'Warning SnapshotContentCreationFailed: Failed to create snapshot content with error snapshot controller failed to update snap on API server: cannot get claim from snapshot',
          'retry: Failed to create snapshot content with error snapshot controller failed to update snap on API server: cannot get claim from snapshot',
        ],
      },
      {
        name: 'mirrors a ready content: readyToUse, creationTime, restoreSize and events',
        obs: {
          snapshot: snapshot('snap', {
            pvc: 'data',
            className: 'gold',
            finalizers: [AS_SOURCE, BOUND],
            status: { boundVolumeSnapshotContentName: 'snapcontent-uid-snap', readyToUse: false },
          }),
          contents: [
            content('snapcontent-uid-snap', {
              snapshotUid: 'uid-snap',
              status: {
                readyToUse: true,
                creationTime: 1_772_366_400_000_000_000,
                restoreSize: 1_073_741_824,
                snapshotHandle: 'h',
              },
            }),
          ],
        },
        expected: [
          'status {"readyToUse":true,"creationTime":"2026-03-01T12:00:00Z","restoreSize":"1Gi"}',
          'Normal SnapshotCreated: Snapshot ns/snap was successfully created by the CSI driver.',
          'Normal SnapshotReady: Snapshot ns/snap is ready to use.',
        ],
      },
      {
        name: "copies the content's error while not ready",
        obs: {
          snapshot: snapshot('snap', {
            pvc: 'data',
            className: 'gold',
            finalizers: [AS_SOURCE, BOUND],
            status: { boundVolumeSnapshotContentName: 'snapcontent-uid-snap', readyToUse: false },
          }),
          contents: [
            content('snapcontent-uid-snap', {
              snapshotUid: 'uid-snap',
              status: {
                readyToUse: false,
                error: { time: '2026-03-01T11:00:00Z', message: 'CreateSnapshot failed: quota' },
              },
            }),
          ],
        },
        expected: [
          'status {"error":{"time":"2026-03-01T11:00:00Z","message":"CreateSnapshot failed: quota"}}',
        ],
      },
      {
        name: 'clears the error once ready',
        obs: {
          snapshot: snapshot('snap', {
            pvc: 'data',
            className: 'gold',
            finalizers: [AS_SOURCE, BOUND],
            status: {
              boundVolumeSnapshotContentName: 'snapcontent-uid-snap',
              readyToUse: false,
              creationTime: '2026-03-01T11:00:00Z',
              restoreSize: '1Gi',
              error: { message: 'old' },
            },
          }),
          contents: [
            content('snapcontent-uid-snap', {
              snapshotUid: 'uid-snap',
              status: { readyToUse: true, error: { message: 'old' } },
            }),
          ],
        },
        expected: [
          'status {"readyToUse":true,"error":null}',
          'Normal SnapshotReady: Snapshot ns/snap is ready to use.',
        ],
      },
      {
        name: 'a content of the same name bound to another snapshot is reported, never used',
        obs: { contents: [content('snapcontent-uid-snap', { snapshotUid: 'someone-else' })] },
        expected: [
          'finalizers +as-source',
          'status {"error":{"time":"2026-03-01T12:00:00Z","message":"VolumeSnapshotContent [snapcontent-uid-snap] is bound to a different snapshot"},"readyToUse":false}',
          'Warning SnapshotContentMisbound: VolumeSnapshotContent [snapcontent-uid-snap] is bound to a different snapshot',
          'retry: VolumeSnapshotContent [snapcontent-uid-snap] is bound to a different snapshot',
        ],
      },
      {
        name: 'a ready snapshot whose content vanished says so',
        obs: {
          snapshot: snapshot('snap', {
            pvc: 'data',
            className: 'gold',
            finalizers: [AS_SOURCE, BOUND],
            status: { boundVolumeSnapshotContentName: 'snapcontent-uid-snap', readyToUse: true },
          }),
        },
        expected: [
          'status {"error":{"time":"2026-03-01T12:00:00Z","message":"VolumeSnapshotContent is missing"},"readyToUse":false}',
          'Warning SnapshotContentMissing: VolumeSnapshotContent is missing',
        ],
      },
      {
        name: 'a ready, bound snapshot needs nothing',
        obs: {
          snapshot: snapshot('snap', {
            pvc: 'data',
            className: 'gold',
            finalizers: [AS_SOURCE, BOUND],
            status: { boundVolumeSnapshotContentName: 'snapcontent-uid-snap', readyToUse: true },
          }),
          contents: [
            content('snapcontent-uid-snap', {
              snapshotUid: 'uid-snap',
              status: { readyToUse: true },
            }),
          ],
        },
        expected: [],
      },
    ];
    for (const { name, obs, expected } of cases) {
      it(name, function () {
        expect(summary(planSnapshot(observe(obs)))).to.deep.equal(expected);
      });
    }

    it('nests the PV error as upstream does (Go %q)', function () {
      const plan = planSnapshot(
        observe({
          snapshot: snapshot('snap', { pvc: 'data', className: 'gold', finalizers: [AS_SOURCE] }),
          pv: undefined,
        }),
      );
      const status = plan.actions.find((action) => action.type === 'patchSnapshotStatus');
      expect(status?.type === 'patchSnapshotStatus' && status.status.error).to.deep.equal({
        time: '2026-03-01T12:00:00Z',
        message:
          'Failed to create snapshot content with error failed to get input parameters to create snapshot snap: ' +
          String.raw`"failed to retrieve PV pv-1 from the API server: \"persistentvolumes \\\"pv-1\\\" not found\""`,
      });
    });

    it('records the source volume mode only when the PV states it', function () {
      const modeOf = (volume: ReturnType<typeof pv>) => {
        const create = planSnapshot(observe({ pv: volume })).actions.find(
          (action) => action.type === 'createContent',
        );
        return create?.type === 'createContent' ? create.content.spec : undefined;
      };
      expect(modeOf(pv('pv-1', { claim: 'data' }))).to.not.have.property('sourceVolumeMode');
      expect(modeOf(pv('pv-1', { claim: 'data', volumeMode: 'Filesystem' }))).to.have.property(
        'sourceVolumeMode',
        'Filesystem',
      );
    });

    it('builds the content upstream builds', function () {
      const plan = planSnapshot(
        observe({ pv: pv('pv-1', { claim: 'data', volumeMode: 'Block' }) }),
      );
      const create = plan.actions.find((action) => action.type === 'createContent');
      expect(create?.type === 'createContent' && create.content).to.deep.equal({
        apiVersion: 'snapshot.storage.k8s.io/v1',
        kind: 'VolumeSnapshotContent',
        metadata: { name: 'snapcontent-uid-snap' },
        spec: {
          volumeSnapshotRef: {
            apiVersion: 'snapshot.storage.k8s.io/v1',
            kind: 'VolumeSnapshot',
            name: 'snap',
            namespace: 'ns',
            uid: 'uid-snap',
            resourceVersion: '10',
          },
          source: { volumeHandle: 'handle-pv-1' },
          volumeSnapshotClassName: 'gold',
          deletionPolicy: 'Delete',
          driver: 'local.snapback.dev',
          sourceVolumeMode: 'Block',
        },
      });
    });

    it('records the deletion Secret from templated class parameters', function () {
      const classes = [
        snapshotClass('gold', {
          parameters: {
            'csi.storage.k8s.io/snapshotter-secret-name': 'creds-${volumesnapshot.name}',
            'csi.storage.k8s.io/snapshotter-secret-namespace': '${volumesnapshot.namespace}',
          },
        }),
      ];
      const create = planSnapshot(observe({ classes })).actions.find(
        (action) => action.type === 'createContent',
      );
      expect(create?.type === 'createContent' && create.content.metadata.annotations).to.deep.equal(
        {
          [ANN_DELETION_SECRET_NAME]: 'creds-snap',
          [ANN_DELETION_SECRET_NAMESPACE]: 'ns',
        },
      );
    });
  });

  describe('class selection', function () {
    const noClass = snapshot('snap', { pvc: 'data' });
    const cases = [
      {
        name: 'no default class: fails with a reason, without touching readyToUse',
        classes: [GOLD],
        expected:
          /^Failed to set default snapshot class with error cannot find default snapshot class$/,
      },
      {
        name: 'only another driver has a default: same failure',
        classes: [snapshotClass('other', { driver: 'other.csi', isDefault: true })],
        expected: /cannot find default snapshot class/,
      },
      {
        name: 'two defaults for the driver: refuses to guess',
        classes: [snapshotClass('a', { isDefault: true }), snapshotClass('b', { isDefault: true })],
        expected:
          /^Failed to set default snapshot class with error 2 default snapshot classes were found$/,
      },
    ];
    for (const { name, classes, expected } of cases) {
      it(name, function () {
        const plan = planSnapshot(observe({ snapshot: noClass, classes }));
        expect(plan.retry).to.match(expected);
        const [status, event] = plan.actions;
        expect(status).to.deep.include({ type: 'patchSnapshotStatus' });
        expect(status?.type === 'patchSnapshotStatus' && status.status).to.not.have.property(
          'readyToUse',
        );
        expect(event).to.include({
          type: 'event',
          eventType: 'Warning',
          reason: 'SetDefaultSnapshotClassFailed',
        });
        expect(plan.actions).to.have.length(2);
      });
    }

    it('one default for the driver: sets it first, then proceeds with it', function () {
      const classes = [
        snapshotClass('fast', { isDefault: true, policy: 'Retain' }),
        snapshotClass('other', { driver: 'x', isDefault: true }),
        GOLD,
      ];
      const lines = summary(planSnapshot(observe({ snapshot: noClass, classes })));
      expect(lines[0]).to.equal('class fast');
      expect(lines).to.include('create snapcontent-uid-snap');
      expect(lines[1], 'Retain: no bound finalizer').to.equal('finalizers +as-source');
    });

    it('a missing explicit class is reported as upstream does', function () {
      const plan = planSnapshot(observe({ classes: [] }));
      expect(summary(plan)[1]).to.equal(
        'Warning GetSnapshotClassFailed: Failed to get snapshot class with error volumesnapshotclass.snapshot.storage.k8s.io "gold" not found',
      );
    });

    it('chooseDefaultClass', function () {
      expect(
        chooseDefaultClass([snapshotClass('a', { isDefault: true })], 'local.snapback.dev'),
      ).to.have.nested.property('class.metadata.name', 'a');
      expect(chooseDefaultClass([], 'd')).to.have.property('error');
    });
  });

  describe('pre-provisioned snapshots', function () {
    const pre = (options: Parameters<typeof snapshot>[1] = {}) =>
      snapshot('snap', { content: 'pre', ...options });
    const cases: Array<{
      name: string;
      obs: Partial<SnapshotObservation> & { contents?: VolumeSnapshotContent[] };
      expected: string[];
    }> = [
      {
        name: 'fills the uid (and class) into the content and binds',
        obs: {
          snapshot: pre({ className: 'gold' }),
          contents: [
            content('pre', {
              snapshotHandle: 'backend-1',
              status: { readyToUse: true, restoreSize: 5 * 2 ** 20, snapshotHandle: 'backend-1' },
            }),
          ],
        },
        expected: [
          'finalizers +as-source',
          'bind pre uid=uid-snap class=gold',
          'status {"boundVolumeSnapshotContentName":"pre","readyToUse":true,"restoreSize":"5Mi"}',
          'Normal SnapshotReady: Snapshot ns/snap is ready to use.',
        ],
      },
      {
        name: "the snapshot's class replaces the one an unbound content names",
        obs: {
          snapshot: pre({ className: 'gold', finalizers: [AS_SOURCE] }),
          contents: [content('pre', { snapshotHandle: 'h', className: 'silver' })],
        },
        expected: [
          'bind pre uid=uid-snap class=gold',
          'status {"boundVolumeSnapshotContentName":"pre","readyToUse":false}',
        ],
      },
      {
        name: 'a content bound by uid that names no class gets the snapshot class',
        obs: {
          snapshot: pre({
            className: 'gold',
            finalizers: [AS_SOURCE, BOUND],
            status: { boundVolumeSnapshotContentName: 'pre', readyToUse: false },
          }),
          contents: [content('pre', { snapshotHandle: 'h', snapshotUid: 'uid-snap' })],
        },
        expected: ['bind pre uid=uid-snap class=gold'],
      },
      {
        name: 'a content bound by uid that names a class is left alone',
        obs: {
          snapshot: pre({
            className: 'gold',
            finalizers: [AS_SOURCE, BOUND],
            status: { boundVolumeSnapshotContentName: 'pre', readyToUse: false },
          }),
          contents: [
            content('pre', { snapshotHandle: 'h', snapshotUid: 'uid-snap', className: 'silver' }),
          ],
        },
        expected: [],
      },
      {
        name: 'bound-protection follows once the status names the content',
        obs: {
          snapshot: pre({
            finalizers: [AS_SOURCE],
            status: { boundVolumeSnapshotContentName: 'pre', readyToUse: false },
          }),
          contents: [content('pre', { snapshotHandle: 'h', snapshotUid: 'uid-snap' })],
        },
        expected: ['finalizers +bound'],
      },
      {
        name: 'without a class, binds by uid only; Retain gets no bound finalizer',
        obs: {
          snapshot: pre(),
          contents: [content('pre', { snapshotHandle: 'h', policy: 'Retain' })],
        },
        expected: [
          'finalizers +as-source',
          'bind pre uid=uid-snap',
          'status {"boundVolumeSnapshotContentName":"pre","readyToUse":false}',
        ],
      },
      {
        name: 'content missing',
        obs: { snapshot: pre({ finalizers: [AS_SOURCE] }) },
        expected: [
          'status {"error":{"time":"2026-03-01T12:00:00Z","message":"VolumeSnapshotContent is missing"},"readyToUse":false}',
          'Warning SnapshotContentMissing: VolumeSnapshotContent is missing',
          'retry: snapshot ns/snap requests a non-existing content pre',
        ],
      },
      {
        name: 'content bound to another snapshot',
        obs: {
          snapshot: pre({ finalizers: [AS_SOURCE] }),
          contents: [content('pre', { snapshotHandle: 'h', snapshotName: 'other' })],
        },
        expected: [
          'status {"error":{"time":"2026-03-01T12:00:00Z","message":"VolumeSnapshotContent [pre] is bound to a different snapshot"},"readyToUse":false}',
          'Warning SnapshotContentMisbound: VolumeSnapshotContent [pre] is bound to a different snapshot',
          'retry: VolumeSnapshotContent [pre] is bound to a different snapshot',
        ],
      },
      {
        name: 'content is a dynamic one',
        obs: {
          snapshot: pre({ finalizers: [AS_SOURCE] }),
          contents: [content('pre', { volumeHandle: 'v' })],
        },
        expected: [
          'status {"error":{"time":"2026-03-01T12:00:00Z","message":"VolumeSnapshotContent is dynamically provisioned while expecting a pre-provisioned one"},"readyToUse":false}',
          'Warning SnapshotContentMismatch: VolumeSnapshotContent is dynamically provisioned while expecting a pre-provisioned one',
          'retry: VolumeSnapshotContent is dynamically provisioned while expecting a pre-provisioned one',
        ],
      },
      {
        name: 'an already bound content is not patched again',
        obs: {
          snapshot: pre({
            finalizers: [AS_SOURCE, BOUND],
            status: { boundVolumeSnapshotContentName: 'pre', readyToUse: false },
          }),
          contents: [
            content('pre', {
              snapshotHandle: 'h',
              snapshotUid: 'uid-snap',
              status: { readyToUse: false },
            }),
          ],
        },
        expected: [],
      },
    ];
    for (const { name, obs, expected } of cases) {
      it(name, function () {
        expect(
          summary(planSnapshot(observe({ pvc: undefined, pv: undefined, ...obs }))),
        ).to.deep.equal(expected);
      });
    }
  });

  describe('deletion', function () {
    const deleting = (
      status: VolumeSnapshot['status'] = {
        boundVolumeSnapshotContentName: 'snapcontent-uid-snap',
        readyToUse: true,
      },
    ) =>
      snapshot('snap', {
        pvc: 'data',
        className: 'gold',
        finalizers: [AS_SOURCE, BOUND],
        deleting: true,
        status,
      });
    const bound = (options: Parameters<typeof content>[1] = {}) =>
      content('snapcontent-uid-snap', {
        snapshotUid: 'uid-snap',
        finalizers: [FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND],
        ...options,
      });
    const cases: Array<{
      name: string;
      obs: Partial<SnapshotObservation> & { contents?: VolumeSnapshotContent[] };
      expected: string[];
    }> = [
      {
        name: 'Delete: marks and deletes the content, keeps bound-protection until it is gone',
        obs: { snapshot: deleting(), contents: [bound()] },
        expected: [
          'annotate-being-deleted snapcontent-uid-snap',
          'delete snapcontent-uid-snap',
          'finalizers -as-source',
        ],
      },
      {
        name: 'Delete: once the content is gone, the last finalizer goes',
        obs: {
          snapshot: snapshot('snap', {
            pvc: 'data',
            finalizers: [BOUND],
            deleting: true,
            status: { boundVolumeSnapshotContentName: 'snapcontent-uid-snap', readyToUse: true },
          }),
        },
        expected: ['finalizers -bound'],
      },
      {
        name: 'Delete: a content already being deleted is not deleted again',
        obs: {
          snapshot: deleting(),
          contents: [
            bound({ deleting: true, annotations: { [ANN_VOLUME_SNAPSHOT_BEING_DELETED]: 'yes' } }),
          ],
        },
        expected: ['finalizers -as-source'],
      },
      {
        name: 'Retain: marks the content, keeps it, and lets the snapshot go',
        obs: { snapshot: deleting(), contents: [bound({ policy: 'Retain' })] },
        expected: ['annotate-being-deleted snapcontent-uid-snap', 'finalizers -as-source -bound'],
      },
      {
        name: 'a content that does not point back is never touched',
        obs: {
          snapshot: deleting(),
          contents: [content('snapcontent-uid-snap', { snapshotUid: 'another' })],
        },
        expected: ['finalizers -as-source -bound'],
      },
      {
        name: 'refused while a Pending PVC restores from it',
        obs: {
          snapshot: deleting(),
          contents: [bound()],
          restoringPvcs: [
            pvc('restore-b', { phase: 'Pending', restoreFrom: 'snap' }),
            pvc('restore-a', { phase: 'Pending', restoreFrom: 'snap' }),
          ],
        },
        expected: [
          'Warning SnapshotDeletePending: Snapshot is being used to restore a PVC (restore-a, restore-b)',
          'retry: snapshot ns/snap is being used to restore PVC restore-a, restore-b',
        ],
      },
      {
        name: 'a Bound PVC restored from it does not block',
        obs: {
          snapshot: deleting(),
          contents: [bound({ policy: 'Retain' })],
          restoringPvcs: [pvc('restored', { phase: 'Bound', restoreFrom: 'snap' })],
        },
        expected: ['annotate-being-deleted snapcontent-uid-snap', 'finalizers -as-source -bound'],
      },
      {
        name: 'creation failed for good (driver refused the class): deleted all the same',
        obs: {
          snapshot: deleting({
            boundVolumeSnapshotContentName: 'snapcontent-uid-snap',
            readyToUse: false,
            error: { message: 'Failed to create snapshot: INVALID_ARGUMENT: bad class' },
          }),
          pvc: pvc('data', { volumeName: 'pv-1', finalizers: [FINALIZER_PVC_AS_SOURCE] }),
          contents: [
            bound({
              status: {
                readyToUse: false,
                error: { message: 'Failed to create snapshot: INVALID_ARGUMENT: bad class' },
              },
            }),
          ],
        },
        expected: [
          'annotate-being-deleted snapcontent-uid-snap',
          'delete snapcontent-uid-snap',
          'finalizers -as-source',
        ],
      },
      {
        name: 'still being taken from a protected PVC: deleted at once (the sidecar waits for the call)',
        obs: {
          snapshot: deleting({
            boundVolumeSnapshotContentName: 'snapcontent-uid-snap',
            readyToUse: false,
          }),
          pvc: pvc('data', { volumeName: 'pv-1', finalizers: [FINALIZER_PVC_AS_SOURCE] }),
          contents: [bound({ status: { readyToUse: true } })],
        },
        expected: [
          'annotate-being-deleted snapcontent-uid-snap',
          'delete snapcontent-uid-snap',
          'finalizers -as-source',
        ],
      },
      {
        name: 'status not written yet: snapcontent-<uid> is found by name and deleted',
        obs: {
          snapshot: snapshot('snap', {
            pvc: 'data',
            className: 'gold',
            finalizers: [AS_SOURCE],
            deleting: true,
          }),
          pvc: pvc('data', { volumeName: 'pv-1', finalizers: [FINALIZER_PVC_AS_SOURCE] }),
          contents: [bound()],
        },
        expected: [
          'annotate-being-deleted snapcontent-uid-snap',
          'delete snapcontent-uid-snap',
          'finalizers -as-source',
        ],
      },
      {
        name: 'nothing created yet: deleted at once, no content is created',
        obs: {
          snapshot: snapshot('snap', {
            pvc: 'data',
            className: 'gold',
            finalizers: [AS_SOURCE],
            deleting: true,
          }),
          pvc: pvc('data', { volumeName: 'pv-1', finalizers: [FINALIZER_PVC_AS_SOURCE] }),
        },
        expected: ['finalizers -as-source'],
      },
      {
        name: 'pre-provisioned, status not written yet: its content is neither marked nor deleted',
        obs: {
          snapshot: snapshot('snap', {
            content: 'pre',
            finalizers: [AS_SOURCE, BOUND],
            deleting: true,
          }),
          pvc: undefined,
          pv: undefined,
          contents: [
            content('pre', {
              snapshotHandle: 'backend-1',
              snapshotUid: 'uid-snap',
              policy: 'Delete',
              finalizers: [FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND],
            }),
          ],
        },
        expected: ['finalizers -as-source -bound'],
      },
      {
        name: 'pre-provisioned and bound in status: handled by its deletion policy',
        obs: {
          snapshot: snapshot('snap', {
            content: 'pre',
            finalizers: [AS_SOURCE, BOUND],
            deleting: true,
            status: { boundVolumeSnapshotContentName: 'pre', readyToUse: true },
          }),
          pvc: undefined,
          pv: undefined,
          contents: [
            content('pre', {
              snapshotHandle: 'backend-1',
              snapshotUid: 'uid-snap',
              policy: 'Delete',
              finalizers: [FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND],
            }),
          ],
        },
        expected: ['annotate-being-deleted pre', 'delete pre', 'finalizers -as-source'],
      },
      {
        name: 'without our finalizers there is nothing to do',
        obs: {
          snapshot: snapshot('snap', {
            pvc: 'data',
            deleting: true,
            finalizers: ['someone.else/f'],
          }),
        },
        expected: [],
      },
    ];
    for (const { name, obs, expected } of cases) {
      it(name, function () {
        expect(summary(planSnapshot(observe(obs)))).to.deep.equal(expected);
      });
    }

    it('never resolves a class for a snapshot being deleted', function () {
      const plan = planSnapshot(
        observe({
          snapshot: snapshot('snap', { pvc: 'data', finalizers: [AS_SOURCE], deleting: true }),
          classes: [],
          pvc: undefined,
        }),
      );
      expect(summary(plan)).to.deep.equal(['finalizers -as-source']);
    });
  });

  describe('group snapshot members', function () {
    const member = (options: Parameters<typeof snapshot>[1] = {}) =>
      snapshot('snap', { pvc: 'data', group: 'group-1', ...options });
    const memberContent = (options: Parameters<typeof content>[1] = {}) =>
      content('snapcontent-5e1f', {
        snapshotUid: 'uid-snap',
        className: undefined,
        annotations: { 'groupsnapshot.storage.k8s.io/volumeGroupSnapshotHandle': 'g-1' },
        ...options,
      });
    const cases: Array<{
      name: string;
      obs: Partial<SnapshotObservation> & { contents?: VolumeSnapshotContent[] };
      expected: string[];
    }> = [
      {
        name: 'no default class is set on a member, and none is looked for',
        obs: { snapshot: member(), classes: [] },
        expected: [
          'finalizers +as-source',
          'retry: detected group snapshot member ns/snap with no content, retrying',
        ],
      },
      {
        name: 'a member is never given a content of its own, nor protects its PVC',
        obs: { snapshot: member({ className: 'gold', finalizers: [AS_SOURCE] }) },
        expected: ['retry: detected group snapshot member ns/snap with no content, retrying'],
      },
      {
        name: 'a member whose content is not there yet waits',
        obs: {
          snapshot: member({
            finalizers: [AS_SOURCE],
            status: { boundVolumeSnapshotContentName: 'snapcontent-5e1f', readyToUse: false },
          }),
        },
        expected: [
          'retry: group snapshot member ns/snap requests an non-existing content snapcontent-5e1f',
        ],
      },
      {
        name: 'a member mirrors the content its group bound it to, without bound-protection',
        obs: {
          snapshot: member({
            finalizers: [AS_SOURCE],
            status: { boundVolumeSnapshotContentName: 'snapcontent-5e1f', readyToUse: false },
          }),
          contents: [
            memberContent({
              status: { readyToUse: true, snapshotHandle: 'm-1', volumeGroupSnapshotHandle: 'g-1' },
            }),
          ],
        },
        expected: [
          'status {"readyToUse":true}',
          'Normal SnapshotReady: Snapshot ns/snap is ready to use.',
        ],
      },
      {
        name: 'deleting a member of a group that exists is refused',
        obs: {
          snapshot: member({
            finalizers: [AS_SOURCE, IN_GROUP],
            deleting: true,
            status: {
              boundVolumeSnapshotContentName: 'snapcontent-5e1f',
              readyToUse: true,
              volumeGroupSnapshotName: 'group-1',
            },
          }),
          contents: [memberContent()],
          groupSnapshotExists: true,
        },
        expected: [
          'Warning SnapshotDeletePending: deletion of the individual volume snapshot ns/snap is not allowed as it belongs to group snapshot ns/group-1. Deleting the group snapshot will trigger the deletion of all the individual volume snapshots that are part of the group.',
          'retry: deletion of the individual volume snapshot ns/snap is not allowed as it belongs to group snapshot ns/group-1. Deleting the group snapshot will trigger the deletion of all the individual volume snapshots that are part of the group.',
        ],
      },
      {
        name: 'a member whose group was not looked up is not deleted either',
        obs: {
          snapshot: member({
            finalizers: [AS_SOURCE, IN_GROUP],
            deleting: true,
            status: { readyToUse: true, volumeGroupSnapshotName: 'group-1' },
          }),
        },
        expected: [
          'Warning SnapshotDeletePending: deletion of the individual volume snapshot ns/snap is not allowed as it belongs to group snapshot ns/group-1. Deleting the group snapshot will trigger the deletion of all the individual volume snapshots that are part of the group.',
          'retry: deletion of the individual volume snapshot ns/snap is not allowed as it belongs to group snapshot ns/group-1. Deleting the group snapshot will trigger the deletion of all the individual volume snapshots that are part of the group.',
        ],
      },
      {
        name: 'once its group is gone, a member goes, in-group finalizer and all',
        obs: {
          snapshot: member({
            finalizers: [AS_SOURCE, IN_GROUP],
            deleting: true,
            status: {
              boundVolumeSnapshotContentName: 'snapcontent-5e1f',
              readyToUse: true,
              volumeGroupSnapshotName: 'group-1',
            },
          }),
          contents: [memberContent({ policy: 'Retain' })],
          groupSnapshotExists: false,
        },
        expected: ['annotate-being-deleted snapcontent-5e1f', 'finalizers -as-source -in-group'],
      },
    ];
    for (const { name, obs, expected } of cases) {
      it(name, function () {
        expect(summary(planSnapshot(observe(obs)))).to.deep.equal(expected);
      });
    }
  });

  it('rejects a snapshot naming both sources', function () {
    const plan = planSnapshot(
      observe({ snapshot: snapshot('snap', { pvc: 'data', content: 'c', className: 'gold' }) }),
    );
    expect(plan.retry).to.match(
      /Exactly one of PersistentVolumeClaimName and VolumeSnapshotContentName/,
    );
    expect(summary(plan)[1]).to.match(/^Warning SnapshotValidationError/);
  });
});

describe('statusFromContent', function () {
  it('fills restoreSize only when empty or zero', function () {
    const base = snapshot('snap', {
      pvc: 'data',
      status: { boundVolumeSnapshotContentName: 'c', readyToUse: false, restoreSize: '2Gi' },
    });
    const bigger = content('c', {
      snapshotUid: 'uid-snap',
      status: { readyToUse: false, restoreSize: 3 * 2 ** 30 },
    });
    expect(statusFromContent(base, bigger).patch).to.equal(undefined);
    const zero = { ...base, status: { ...base.status, restoreSize: '0' } };
    expect(statusFromContent(zero, bigger).patch).to.deep.equal({ restoreSize: '3Gi' });
    const odd = content('c', {
      snapshotUid: 'uid-snap',
      status: { readyToUse: false, restoreSize: 1500 },
    });
    expect(
      statusFromContent(
        { ...base, status: { boundVolumeSnapshotContentName: 'c', readyToUse: false } },
        odd,
      ).patch,
    ).to.deep.equal({ restoreSize: '1500' });
  });
});

describe('snapshotterSecretRef', function () {
  const snap = snapshot('snap', { pvc: 'data' });
  it('resolves the templates upstream allows', function () {
    expect(
      snapshotterSecretRef(
        {
          'csi.storage.k8s.io/snapshotter-secret-name': '${volumesnapshotcontent.name}',
          'csi.storage.k8s.io/snapshotter-secret-namespace': 'kube-system',
        },
        'snapcontent-1',
        snap,
      ),
    ).to.deep.equal({ ref: { name: 'snapcontent-1', namespace: 'kube-system' } });
    expect(snapshotterSecretRef({}, 'c', snap)).to.deep.equal({});
  });

  it('rejects half a reference, unknown tokens and names that are not names', function () {
    expect(snapshotterSecretRef({ 'csi.storage.k8s.io/snapshotter-secret-name': 'x' }, 'c', snap))
      .to.have.property('error')
      .that.match(/must be set together/);
    expect(
      snapshotterSecretRef(
        {
          'csi.storage.k8s.io/snapshotter-secret-name': 'x',
          'csi.storage.k8s.io/snapshotter-secret-namespace': '${volumesnapshot.name}',
        },
        'c',
        snap,
      ),
    )
      .to.have.property('error')
      .that.match(/\$\{volumesnapshot\.name\}; allowed/);
    expect(
      snapshotterSecretRef(
        {
          'csi.storage.k8s.io/snapshotter-secret-name': 'Bad_Name',
          'csi.storage.k8s.io/snapshotter-secret-namespace': 'ns',
        },
        'c',
        snap,
      ),
    )
      .to.have.property('error')
      .that.match(/not a Secret name/);
  });
});

describe('planContent', function () {
  const snap = snapshot('snap', { pvc: 'data', finalizers: [AS_SOURCE] });
  it('adds bound-protection once the content has a uid, not while pre-bound', function () {
    expect(
      planContent({ content: content('c', { snapshotUid: 'uid-snap' }), snapshot: snap }).actions,
    ).to.deep.equal([{ type: 'addContentFinalizer' }]);
    expect(
      planContent({ content: content('c', { snapshotHandle: 'h' }), snapshot: snap }).actions,
    ).to.deep.equal([]);
    expect(
      planContent({
        content: content('c', {
          snapshotUid: 'uid-snap',
          finalizers: [FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND],
        }),
        snapshot: snap,
      }).actions,
    ).to.deep.equal([]);
  });

  it('marks being-deleted when its snapshot is being deleted, not when a namesake is', function () {
    const dying = snapshot('snap', { pvc: 'data', finalizers: [AS_SOURCE], deleting: true });
    const bound = content('c', {
      snapshotUid: 'uid-snap',
      finalizers: [FINALIZER_VOLUME_SNAPSHOT_CONTENT_BOUND],
    });
    expect(planContent({ content: bound, snapshot: dying }).actions).to.deep.equal([
      { type: 'annotateContentBeingDeleted' },
    ]);
    const namesake = snapshot('snap', {
      uid: 'new-uid',
      pvc: 'data',
      finalizers: [AS_SOURCE],
      deleting: true,
    });
    expect(planContent({ content: bound, snapshot: namesake }).actions).to.deep.equal([]);
    expect(
      planContent({ content: bound, snapshot: undefined }).actions,
      'an orphan is kept',
    ).to.deep.equal([]);
  });

  it('reports a content with both or no handles', function () {
    const broken = content('c', { snapshotUid: 'u' });
    broken.spec.source = {};
    const plan = planContent({ content: broken });
    expect(plan.retry).to.match(/Exactly one of VolumeHandle and SnapshotHandle/);
    expect(plan.actions[0]).to.include({ reason: 'ContentValidationError' });
  });
});

describe('planPvcFinalizer', function () {
  const protectedPvc = pvc('data', { finalizers: [FINALIZER_PVC_AS_SOURCE] });
  it('keeps the finalizer while a snapshot of the PVC is not ready', function () {
    const result = planPvcFinalizer({
      pvc: protectedPvc,
      snapshots: [
        snapshot('a', { pvc: 'data', status: { readyToUse: true } }),
        snapshot('b', { pvc: 'data', status: { readyToUse: false } }),
        snapshot('c', { pvc: 'other' }),
      ],
    });
    expect(result).to.deep.equal({ removeFinalizer: false, usedBy: ['b'] });
  });

  const cases: Array<{ name: string; snapshots: VolumeSnapshot[]; usedBy: string[] }> = [
    {
      name: 'a snapshot that never became ready stops counting once its deletion went ahead',
      snapshots: [
        snapshot('failed', {
          pvc: 'data',
          deleting: true,
          finalizers: [BOUND],
          status: { readyToUse: false, error: { message: 'INVALID_ARGUMENT' } },
        }),
      ],
      usedBy: [],
    },
    {
      name: 'a deleted snapshot that never got our finalizers does not count',
      snapshots: [snapshot('failed', { pvc: 'data', deleting: true, finalizers: ['other/f'] })],
      usedBy: [],
    },
    {
      name: 'a snapshot whose deletion is held (still as-source) still counts',
      snapshots: [
        snapshot('held', {
          pvc: 'data',
          deleting: true,
          finalizers: [AS_SOURCE, BOUND],
          status: { readyToUse: false },
        }),
      ],
      usedBy: ['held'],
    },
    {
      name: 'another snapshot still being taken keeps it',
      snapshots: [
        snapshot('failed', { pvc: 'data', deleting: true, finalizers: [BOUND] }),
        snapshot('taking', { pvc: 'data', finalizers: [AS_SOURCE] }),
      ],
      usedBy: ['taking'],
    },
  ];
  for (const { name, snapshots, usedBy } of cases) {
    it(name, function () {
      expect(planPvcFinalizer({ pvc: protectedPvc, snapshots })).to.deep.equal({
        removeFinalizer: usedBy.length === 0,
        usedBy,
      });
    });
  }

  it('removes it when every snapshot of it is ready or gone', function () {
    expect(
      planPvcFinalizer({
        pvc: protectedPvc,
        snapshots: [snapshot('a', { pvc: 'data', status: { readyToUse: true } })],
      }).removeFinalizer,
    ).to.equal(true);
    expect(planPvcFinalizer({ pvc: protectedPvc, snapshots: [] }).removeFinalizer).to.equal(true);
    expect(
      planPvcFinalizer({ pvc: pvc('data'), snapshots: [] }).removeFinalizer,
      'nothing to remove',
    ).to.equal(false);
  });
});

describe('restoreSourcesOf', function () {
  it('indexes PVCs by the snapshot they restore from', function () {
    expect(restoreSourcesOf(pvc('r', { restoreFrom: 'snap' }))).to.deep.equal(['ns/snap']);
    expect(restoreSourcesOf(pvc('blank'))).to.deep.equal([]);
  });
});
