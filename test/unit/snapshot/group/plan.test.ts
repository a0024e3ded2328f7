import { expect } from 'chai';
import {
  ANN_GROUP_DELETION_SECRET_NAME,
  ANN_GROUP_DELETION_SECRET_NAMESPACE,
  ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED,
  ANN_VOLUME_GROUP_SNAPSHOT_HANDLE,
  FINALIZER_VOLUME_GROUP_SNAPSHOT_BOUND as GROUP_BOUND,
  FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND,
  PARAM_GROUP_SNAPSHOTTER_SECRET_NAME,
  PARAM_GROUP_SNAPSHOTTER_SECRET_NAMESPACE,
  memberVolumeSnapshotContentNameFor,
  memberVolumeSnapshotNameFor,
  type VolumeGroupSnapshot,
  type VolumeGroupSnapshotContent,
} from '../../../../src/api/group-snapshot.js';
import {
  ANN_DELETION_SECRET_NAME,
  ANN_DELETION_SECRET_NAMESPACE,
  FINALIZER_VOLUME_SNAPSHOT_IN_GROUP,
  type VolumeSnapshot,
  type VolumeSnapshotContent,
} from '../../../../src/api/snapshot.js';
import type {
  PersistentVolume,
  PersistentVolumeClaim,
} from '../../../../src/snapshot/controller/plan.js';
import {
  chooseDefaultGroupClass,
  groupSnapshotterSecretRef,
  planGroupContent,
  planGroupSnapshot,
  type GroupAction,
  type GroupObservation,
} from '../../../../src/snapshot/group/plan.js';
import type { Plan } from '../../../../src/snapshot/controller/plan.js';
import { buildPv, buildPvc, buildSnapshot, buildContent } from '../../../support/fixtures.js';
import {
  buildGroupClass,
  buildGroupContent,
  buildGroupSnapshot,
} from '../../../support/group-fixtures.js';

const NS = 'ns';
const DRIVER = 'local.snapback.dev';
const UID = 'uid-g';
const CONTENT = `groupsnapcontent-${UID}`;
const DELETED_AT = '2026-01-01T00:00:00Z';
const now = new Date('2026-03-01T12:00:00.000Z');
const NOW = '2026-03-01T12:00:00Z';

function group(
  options: {
    labels?: Record<string, string>;
    contentName?: string;
    className?: string;
    noClass?: boolean;
    finalizers?: string[];
    deleting?: boolean;
    status?: VolumeGroupSnapshot['status'];
  } = {},
): VolumeGroupSnapshot {
  return buildGroupSnapshot({
    name: 'g',
    namespace: NS,
    uid: UID,
    resourceVersion: '10',
    finalizers: options.finalizers,
    deletionTimestamp: options.deleting ? DELETED_AT : undefined,
    matchLabels: options.contentName === undefined ? (options.labels ?? { app: 'db' }) : undefined,
    contentName: options.contentName,
    className: options.noClass ? undefined : (options.className ?? 'gold'),
    status: options.status,
  });
}

function groupContent(
  options: {
    name?: string;
    uid?: string | null;
    groupName?: string;
    policy?: 'Delete' | 'Retain';
    preprovisioned?: boolean;
    className?: string;
    annotations?: Record<string, string>;
    deleting?: boolean;
    status?: VolumeGroupSnapshotContent['status'];
  } = {},
): VolumeGroupSnapshotContent {
  return buildGroupContent({
    name: options.name ?? CONTENT,
    resourceVersion: '20',
    annotations: options.annotations,
    deletionTimestamp: options.deleting ? DELETED_AT : undefined,
    driver: DRIVER,
    groupRef: {
      name: options.groupName ?? 'g',
      namespace: NS,
      uid: options.uid === null ? undefined : (options.uid ?? UID),
    },
    deletionPolicy: options.policy,
    ...(options.preprovisioned
      ? {
          groupSnapshotHandles: {
            volumeGroupSnapshotHandle: 'group-1',
            volumeSnapshotHandles: ['snap-a', 'snap-b'],
          },
        }
      : { volumeHandles: ['handle-pv-a', 'handle-pv-b'] }),
    className: options.className,
    status: options.status,
  });
}

const pvc = (name: string, options: { phase?: string; labels?: Record<string, string> } = {}) =>
  buildPvc({
    name,
    namespace: NS,
    uid: `uid-${name}`,
    labels: options.labels ?? { app: 'db' },
    volumeName: `pv-${name.slice(-1)}`,
    phase: options.phase ?? 'Bound',
  });
const pv = (name: string, options: { claim?: string; driver?: string | null } = {}) =>
  buildPv({
    name,
    claimRef: { name: options.claim ?? `data-${name.slice(-1)}`, namespace: NS },
    driver: options.driver === undefined ? DRIVER : options.driver,
    volumeMode: 'Filesystem',
  });

const PVCS = [pvc('data-b'), pvc('data-a'), pvc('other', { labels: { app: 'web' } })];
const PVS = [pv('pv-a'), pv('pv-b')];
const GOLD = buildGroupClass({ name: 'gold', driver: DRIVER });

function observe(
  overrides: Partial<GroupObservation> & {
    contents?: VolumeGroupSnapshotContent[];
    pvList?: PersistentVolume[];
    snapshots?: VolumeSnapshot[];
    snapshotContents?: VolumeSnapshotContent[];
  } = {},
): GroupObservation {
  const contents = overrides.contents ?? [];
  const pvs = overrides.pvList ?? PVS;
  const snapshots = overrides.snapshots ?? [];
  const snapshotContents = overrides.snapshotContents ?? [];
  return {
    group: group(),
    content: (name) => contents.find((candidate) => candidate.metadata.name === name),
    classes: [GOLD],
    pvcs: PVCS,
    pv: (name) => pvs.find((candidate) => candidate.metadata?.name === name),
    pvByHandle: (driver, handle) =>
      pvs.find(
        (candidate) =>
          candidate.spec?.csi?.driver === driver && candidate.spec.csi.volumeHandle === handle,
      ),
    snapshot: (name) => snapshots.find((candidate) => candidate.metadata.name === name),
    snapshotContent: (name) =>
      snapshotContents.find((candidate) => candidate.metadata.name === name),
    members: [],
    restoringPvcs: [],
    now,
    ...overrides,
  };
}

const short = (finalizer: string) => (finalizer === GROUP_BOUND ? 'bound' : finalizer);

/** One line per action, to compare plans in tables. */
function summary(plan: Plan<GroupAction>): string[] {
  const lines = plan.actions.map((action) => {
    switch (action.type) {
      case 'setGroupClass':
        return `class ${action.className}`;
      case 'addGroupBoundFinalizer':
        return `finalizer +${short(GROUP_BOUND)}`;
      case 'removeGroupBoundFinalizer':
        return `finalizer -${short(GROUP_BOUND)}`;
      case 'createGroupContent':
        return `create ${action.content.metadata.name}`;
      case 'bindGroupContent':
        return `bind ${action.contentName} uid=${action.uid}${action.className ? ` class=${action.className}` : ''}`;
      case 'patchGroupStatus':
        return `status ${JSON.stringify(action.status)}`;
      case 'createMemberContent':
        return `create-member-content ${action.content.metadata.name}`;
      case 'createMemberSnapshot':
        return `create-member-snapshot ${action.snapshot.metadata.name}`;
      case 'bindMemberContent':
        return `bind-member ${action.contentName} -> ${action.snapshotName}`;
      case 'patchMemberSnapshotStatus':
        return `member-status ${action.snapshotName} ${JSON.stringify(action.status)}`;
      case 'patchMemberContentStatus':
        return `member-content-status ${action.contentName} ${JSON.stringify(action.status)}`;
      case 'annotateGroupContentBeingDeleted':
        return `annotate-being-deleted ${action.contentName}`;
      case 'deleteGroupContent':
        return `delete ${action.contentName}`;
      case 'deleteMemberSnapshot':
        return `delete-member ${action.snapshotName}`;
      case 'event':
        return `${action.eventType} ${action.reason}: ${action.message}`;
    }
  });
  return plan.retry ? [...lines, `retry: ${plan.retry}`] : lines;
}

const memberSnapshot = (handle: string) => memberVolumeSnapshotNameFor(UID, handle);
const memberContent = (handle: string) => memberVolumeSnapshotContentNameFor(UID, handle);

/** A cut group: the CSI snapshotter filled the handle and the member list. */
const CUT_STATUS: VolumeGroupSnapshotContent['status'] = {
  volumeGroupSnapshotHandle: 'group-1',
  creationTime: '2026-03-01T11:00:00Z',
  readyToUse: true,
  volumeSnapshotInfoList: [
    {
      volumeHandle: 'handle-pv-a',
      snapshotHandle: 'snap-a',
      creationTime: 1_772_362_800_000_000_000,
      readyToUse: true,
      restoreSize: 1024,
    },
  ],
};

describe('group snapshot plan: dynamic groups', function () {
  const cases: { name: string; obs: GroupObservation; want: string[] }[] = [
    {
      name: 'creates groupsnapcontent-<uid> and records the binding',
      obs: observe(),
      want: [
        `create ${CONTENT}`,
        'Normal CreatingGroupSnapshot: Waiting for a group snapshot ns/g to be created by the CSI driver.',
        `status {"boundVolumeGroupSnapshotContentName":"${CONTENT}","readyToUse":false}`,
      ],
    },
    {
      name: 'a named class that does not exist: error without touching readyToUse',
      obs: observe({ group: group({ className: 'missing' }) }),
      want: [
        `status {"error":{"time":"${NOW}","message":"failed to get group snapshot class with error volumegroupsnapshotclass.groupsnapshot.storage.k8s.io \\"missing\\" not found"}}`,
        'Warning GetGroupSnapshotClassFailed: failed to get group snapshot class with error volumegroupsnapshotclass.groupsnapshot.storage.k8s.io "missing" not found',
        'retry: failed to get group snapshot class with error volumegroupsnapshotclass.groupsnapshot.storage.k8s.io "missing" not found',
      ],
    },
    {
      name: 'no class: the default of the volumes driver is set, then the content created',
      obs: observe({
        group: group({ noClass: true }),
        classes: [
          buildGroupClass({ name: 'other', driver: 'other.driver', isDefault: true }),
          buildGroupClass({ name: 'silver', driver: DRIVER, isDefault: true }),
        ],
      }),
      want: [
        'class silver',
        `create ${CONTENT}`,
        'Normal CreatingGroupSnapshot: Waiting for a group snapshot ns/g to be created by the CSI driver.',
        `status {"boundVolumeGroupSnapshotContentName":"${CONTENT}","readyToUse":false}`,
      ],
    },
    {
      name: 'no class and no default',
      obs: observe({ group: group({ noClass: true }) }),
      want: [
        `status {"error":{"time":"${NOW}","message":"Failed to set default group snapshot class with error cannot find default group snapshot class"}}`,
        'Warning SetDefaultGroupSnapshotClassFailed: Failed to set default group snapshot class with error cannot find default group snapshot class',
        'retry: Failed to set default group snapshot class with error cannot find default group snapshot class',
      ],
    },
    {
      name: 'no class and two defaults',
      obs: observe({
        group: group({ noClass: true }),
        classes: [
          buildGroupClass({ name: 'a', driver: DRIVER, isDefault: true }),
          buildGroupClass({ name: 'b', driver: DRIVER, isDefault: true }),
        ],
      }),
      want: [
        `status {"error":{"time":"${NOW}","message":"Failed to set default group snapshot class with error 2 default snapshot classes were found"}}`,
        'Warning SetDefaultGroupSnapshotClassFailed: Failed to set default group snapshot class with error 2 default snapshot classes were found',
        'retry: Failed to set default group snapshot class with error 2 default snapshot classes were found',
      ],
    },
    {
      name: 'the selector picks no PVC',
      obs: observe({ group: group({ labels: { app: 'none' } }) }),
      want: [
        `status {"error":{"time":"${NOW}","message":"failed to create group snapshot content with error failed to get input parameters to create group snapshot g: \\"label selector app=none for group snapshot not applied to any PVC\\""},"readyToUse":false}`,
        'Warning GroupSnapshotContentCreationFailed: failed to create group snapshot content with error failed to get input parameters to create group snapshot g: "label selector app=none for group snapshot not applied to any PVC"',
        'retry: failed to create group snapshot content with error failed to get input parameters to create group snapshot g: "label selector app=none for group snapshot not applied to any PVC"',
      ],
    },
    {
      name: 'a selected PVC is not bound yet',
      obs: observe({ pvcs: [pvc('data-a'), pvc('data-b', { phase: 'Pending' })] }),
      want: [
        `status {"error":{"time":"${NOW}","message":"failed to create group snapshot content with error failed to get input parameters to create group snapshot g: \\"the PVC data-b is not yet bound to a PV, will not attempt to take a group snapshot\\""},"readyToUse":false}`,
        'Warning GroupSnapshotContentCreationFailed: failed to create group snapshot content with error failed to get input parameters to create group snapshot g: "the PVC data-b is not yet bound to a PV, will not attempt to take a group snapshot"',
        'retry: failed to create group snapshot content with error failed to get input parameters to create group snapshot g: "the PVC data-b is not yet bound to a PV, will not attempt to take a group snapshot"',
      ],
    },
    {
      name: 'a PV bound to another claim',
      obs: observe({ pvList: [pv('pv-a'), pv('pv-b', { claim: 'someone-else' })] }),
      want: [
        `status {"error":{"time":"${NOW}","message":"failed to create group snapshot content with error failed to get input parameters to create group snapshot g: \\"claim in dataSource not bound or invalid\\""},"readyToUse":false}`,
        'Warning GroupSnapshotContentCreationFailed: failed to create group snapshot content with error failed to get input parameters to create group snapshot g: "claim in dataSource not bound or invalid"',
        'retry: failed to create group snapshot content with error failed to get input parameters to create group snapshot g: "claim in dataSource not bound or invalid"',
      ],
    },
    {
      name: 'a volume that is not CSI',
      obs: observe({ pvList: [pv('pv-a'), pv('pv-b', { driver: null })] }),
      want: [
        'Warning CreateGroupSnapshotContentFailed: Cannot snapshot a non-CSI volume: pv-b',
        `status {"error":{"time":"${NOW}","message":"failed to create group snapshot content with error cannot snapshot a non-CSI volume for group snapshot ns/g: pv-b"},"readyToUse":false}`,
        'Warning GroupSnapshotContentCreationFailed: failed to create group snapshot content with error cannot snapshot a non-CSI volume for group snapshot ns/g: pv-b',
        'retry: failed to create group snapshot content with error cannot snapshot a non-CSI volume for group snapshot ns/g: pv-b',
      ],
    },
    {
      name: "a volume of another driver than the class's",
      obs: observe({ pvList: [pv('pv-a'), pv('pv-b', { driver: 'other.driver' })] }),
      want: [
        'Warning CreateGroupSnapshotContentFailed: Volume CSI driver (other.driver) mismatch with VolumeGroupSnapshotClass (local.snapback.dev) ns/g: pv-b',
        `status {"error":{"time":"${NOW}","message":"failed to create group snapshot content with error snapshot controller failed to update ns/g on API server: Volume CSI driver (other.driver) mismatch with VolumeGroupSnapshotClass (local.snapback.dev) ns/g: pv-b"},"readyToUse":false}`,
        'Warning GroupSnapshotContentCreationFailed: failed to create group snapshot content with error snapshot controller failed to update ns/g on API server: Volume CSI driver (other.driver) mismatch with VolumeGroupSnapshotClass (local.snapback.dev) ns/g: pv-b',
        'retry: failed to create group snapshot content with error snapshot controller failed to update ns/g on API server: Volume CSI driver (other.driver) mismatch with VolumeGroupSnapshotClass (local.snapback.dev) ns/g: pv-b',
      ],
    },
    {
      name: 'both a selector and a content name',
      obs: observe({
        group: {
          ...group(),
          spec: {
            source: {
              selector: { matchLabels: { app: 'db' } },
              volumeGroupSnapshotContentName: 'c',
            },
            volumeGroupSnapshotClassName: 'gold',
          },
        },
      }),
      want: [
        `status {"error":{"time":"${NOW}","message":"Exactly one of Selector and VolumeGroupSnapshotContentName should be specified"},"readyToUse":false}`,
        'Warning GroupSnapshotValidationError: Exactly one of Selector and VolumeGroupSnapshotContentName should be specified',
        'retry: Exactly one of Selector and VolumeGroupSnapshotContentName should be specified',
      ],
    },
    {
      name: 'the same error already recorded: no second write, still retried',
      obs: observe({
        group: group({
          className: 'missing',
          status: {
            error: {
              time: NOW,
              message:
                'failed to get group snapshot class with error volumegroupsnapshotclass.groupsnapshot.storage.k8s.io "missing" not found',
            },
          },
        }),
      }),
      want: [
        'retry: failed to get group snapshot class with error volumegroupsnapshotclass.groupsnapshot.storage.k8s.io "missing" not found',
      ],
    },
    {
      name: 'bound to its content (not cut yet): the bound finalizer, whatever the policy',
      obs: observe({
        group: group({
          status: { boundVolumeGroupSnapshotContentName: CONTENT, readyToUse: false },
        }),
        contents: [groupContent({ policy: 'Retain' })],
      }),
      want: ['finalizer +bound'],
    },
    {
      name: 'a content of that name that is pre-provisioned',
      obs: observe({ contents: [groupContent({ preprovisioned: true })] }),
      want: [
        `status {"error":{"time":"${NOW}","message":"VolumeGroupSnapshotContent ${CONTENT} is pre-provisioned while expecting a dynamically provisioned one"},"readyToUse":false}`,
        `Warning GroupSnapshotContentMismatch: VolumeGroupSnapshotContent ${CONTENT} is pre-provisioned while expecting a dynamically provisioned one`,
        `retry: VolumeGroupSnapshotContent ${CONTENT} is pre-provisioned while expecting a dynamically provisioned one`,
      ],
    },
    {
      name: 'a content of that name bound to another uid',
      obs: observe({ contents: [groupContent({ uid: 'uid-other' })] }),
      want: [
        `status {"error":{"time":"${NOW}","message":"VolumeGroupSnapshotContent [${CONTENT}] is bound to a different group snapshot"},"readyToUse":false}`,
        `Warning GroupSnapshotContentMisbound: VolumeGroupSnapshotContent [${CONTENT}] is bound to a different group snapshot`,
        `retry: VolumeGroupSnapshotContent [${CONTENT}] is bound to a different group snapshot`,
      ],
    },
    {
      name: 'cut: each member gets a content and a snapshot, bound, then the group status',
      obs: observe({
        group: group({
          finalizers: [GROUP_BOUND],
          status: { boundVolumeGroupSnapshotContentName: CONTENT, readyToUse: false },
        }),
        contents: [groupContent({ status: CUT_STATUS })],
      }),
      want: [
        `create-member-content ${memberContent('handle-pv-a')}`,
        `create-member-snapshot ${memberSnapshot('handle-pv-a')}`,
        `bind-member ${memberContent('handle-pv-a')} -> ${memberSnapshot('handle-pv-a')}`,
        `member-status ${memberSnapshot('handle-pv-a')} {"boundVolumeSnapshotContentName":"${memberContent('handle-pv-a')}","volumeGroupSnapshotName":"g"}`,
        `member-content-status ${memberContent('handle-pv-a')} {"snapshotHandle":"snap-a","volumeGroupSnapshotHandle":"group-1","creationTime":1772362800000000000,"restoreSize":1024,"readyToUse":true}`,
        'status {"readyToUse":true,"creationTime":"2026-03-01T11:00:00Z"}',
        'Normal GroupSnapshotCreated: GroupSnapshot ns/g was successfully created by the CSI driver.',
        'Normal GroupSnapshotReady: GroupSnapshot ns/g is ready to use.',
      ],
    },
    {
      name: 'cut, members in place: only the group status',
      obs: observe({
        group: group({
          finalizers: [GROUP_BOUND],
          status: { boundVolumeGroupSnapshotContentName: CONTENT, readyToUse: false },
        }),
        contents: [groupContent({ status: CUT_STATUS })],
        snapshots: [
          {
            ...buildSnapshot({ name: memberSnapshot('handle-pv-a'), namespace: NS, uid: 'uid-m' }),
            status: {
              boundVolumeSnapshotContentName: memberContent('handle-pv-a'),
              volumeGroupSnapshotName: 'g',
            },
          },
        ],
        snapshotContents: [
          {
            ...buildContent({
              name: memberContent('handle-pv-a'),
              driver: DRIVER,
              snapshotRef: { name: memberSnapshot('handle-pv-a'), namespace: NS, uid: 'uid-m' },
              volumeHandle: 'handle-pv-a',
            }),
            status: {
              snapshotHandle: 'snap-a',
              volumeGroupSnapshotHandle: 'group-1',
              creationTime: 1_772_362_800_000_000_000,
              restoreSize: 1024,
              readyToUse: true,
            },
          },
        ],
      }),
      want: [
        'status {"readyToUse":true,"creationTime":"2026-03-01T11:00:00Z"}',
        'Normal GroupSnapshotCreated: GroupSnapshot ns/g was successfully created by the CSI driver.',
        'Normal GroupSnapshotReady: GroupSnapshot ns/g is ready to use.',
      ],
    },
    {
      name: "the content's error is copied onto the group",
      obs: observe({
        group: group({
          finalizers: [GROUP_BOUND],
          status: { boundVolumeGroupSnapshotContentName: CONTENT, readyToUse: false },
        }),
        contents: [
          groupContent({
            status: { readyToUse: false, error: { time: NOW, message: 'disk busy' } },
          }),
        ],
      }),
      want: [`status {"error":{"time":"${NOW}","message":"disk busy"}}`],
    },
    {
      name: 'ready and bound: nothing to do',
      obs: observe({
        group: group({
          finalizers: [GROUP_BOUND],
          status: { boundVolumeGroupSnapshotContentName: CONTENT, readyToUse: true },
        }),
        contents: [groupContent({ status: CUT_STATUS })],
      }),
      want: [],
    },
    {
      name: 'ready, its content gone: reported once, not retried',
      obs: observe({
        group: group({
          finalizers: [GROUP_BOUND],
          status: { boundVolumeGroupSnapshotContentName: CONTENT, readyToUse: true },
        }),
      }),
      want: [
        `status {"error":{"time":"${NOW}","message":"VolumeGroupSnapshotContent is missing"},"readyToUse":false}`,
        'Warning GroupSnapshotContentMissing: VolumeGroupSnapshotContent is missing',
      ],
    },
  ];

  for (const { name, obs, want } of cases) {
    it(name, function () {
      expect(summary(planGroupSnapshot(obs))).to.deep.equal(want);
    });
  }

  it('the new content carries the volumes, the ref with uid, the class and its deletion Secret', function () {
    const classWithSecret = buildGroupClass({
      name: 'gold',
      driver: DRIVER,
      deletionPolicy: 'Retain',
      parameters: {
        [PARAM_GROUP_SNAPSHOTTER_SECRET_NAME]: 'creds-${volumegroupsnapshot.name}',
        [PARAM_GROUP_SNAPSHOTTER_SECRET_NAMESPACE]: '${volumegroupsnapshot.namespace}',
      },
    });
    const plan = planGroupSnapshot(observe({ classes: [classWithSecret] }));
    const create = plan.actions[0];
    if (create?.type !== 'createGroupContent') throw new Error('expected a content');
    expect(create.content).to.deep.equal({
      apiVersion: 'groupsnapshot.storage.k8s.io/v1',
      kind: 'VolumeGroupSnapshotContent',
      metadata: {
        name: CONTENT,
        annotations: {
          [ANN_GROUP_DELETION_SECRET_NAME]: 'creds-g',
          [ANN_GROUP_DELETION_SECRET_NAMESPACE]: NS,
        },
      },
      spec: {
        volumeGroupSnapshotRef: {
          apiVersion: 'groupsnapshot.storage.k8s.io/v1',
          kind: 'VolumeGroupSnapshot',
          name: 'g',
          namespace: NS,
          uid: UID,
          resourceVersion: '10',
        },
        source: { volumeHandles: ['handle-pv-a', 'handle-pv-b'] },
        volumeGroupSnapshotClassName: 'gold',
        deletionPolicy: 'Retain',
        driver: DRIVER,
      },
    });
  });

  it('the selector counts matchExpressions too', function () {
    const selected = {
      ...group(),
      spec: {
        source: {
          selector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['web'] }] },
        },
        volumeGroupSnapshotClassName: 'gold',
      },
    };
    const plan = planGroupSnapshot(
      observe({ group: selected, pvList: [...PVS, pv('pv-r', { claim: 'other' })] }),
    );
    const create = plan.actions[0];
    if (create?.type !== 'createGroupContent') throw new Error('expected a content');
    // "other" is bound to pv-r in this table
    expect(create.content.spec.source.volumeHandles).to.have.length(1);
  });

  it('members: a content the group call cut (volume handle, group handle annotation) and an owned, protected snapshot', function () {
    const classWithSecret = buildGroupClass({
      name: 'gold',
      driver: DRIVER,
      parameters: {
        [PARAM_GROUP_SNAPSHOTTER_SECRET_NAME]: 'creds-${volumegroupsnapshotcontent.name}',
        [PARAM_GROUP_SNAPSHOTTER_SECRET_NAMESPACE]: 'secrets',
      },
    });
    const plan = planGroupSnapshot(
      observe({
        group: group({
          finalizers: [GROUP_BOUND],
          status: { boundVolumeGroupSnapshotContentName: CONTENT },
        }),
        classes: [classWithSecret],
        contents: [groupContent({ policy: 'Retain', status: CUT_STATUS })],
      }),
    );
    const content = plan.actions.find((action) => action.type === 'createMemberContent');
    const snapshot = plan.actions.find((action) => action.type === 'createMemberSnapshot');
    expect(content?.content).to.deep.equal({
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshotContent',
      metadata: {
        name: memberContent('handle-pv-a'),
        annotations: {
          [ANN_VOLUME_GROUP_SNAPSHOT_HANDLE]: 'group-1',
          [ANN_DELETION_SECRET_NAME]: `creds-${CONTENT}`,
          [ANN_DELETION_SECRET_NAMESPACE]: 'secrets',
        },
      },
      spec: {
        volumeSnapshotRef: {
          kind: 'VolumeSnapshot',
          name: memberSnapshot('handle-pv-a'),
          namespace: NS,
        },
        deletionPolicy: 'Retain',
        driver: DRIVER,
        source: { volumeHandle: 'handle-pv-a' },
        sourceVolumeMode: 'Filesystem',
      },
    });
    expect(snapshot?.snapshot).to.deep.equal({
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshot',
      metadata: {
        name: memberSnapshot('handle-pv-a'),
        namespace: NS,
        ownerReferences: [
          {
            apiVersion: 'groupsnapshot.storage.k8s.io/v1',
            kind: 'VolumeGroupSnapshot',
            name: 'g',
            uid: UID,
          },
        ],
        finalizers: [FINALIZER_VOLUME_SNAPSHOT_IN_GROUP],
      },
      spec: { source: { persistentVolumeClaimName: 'data-a' } },
    });
  });

  it('members: a bad deletion Secret template stops member creation with a retry', function () {
    const plan = planGroupSnapshot(
      observe({
        group: group({ status: { boundVolumeGroupSnapshotContentName: CONTENT } }),
        classes: [
          buildGroupClass({
            name: 'gold',
            driver: DRIVER,
            parameters: { [PARAM_GROUP_SNAPSHOTTER_SECRET_NAME]: 'x' },
          }),
        ],
        contents: [groupContent({ status: CUT_STATUS })],
      }),
    );
    expect(summary(plan)).to.deep.equal([
      'finalizer +bound',
      `retry: getGroupSnapshotSecret: failed to get secret reference for group snapshot content ${CONTENT}: csi.storage.k8s.io/group-snapshotter-secret-name and csi.storage.k8s.io/group-snapshotter-secret-namespace must be set together`,
    ]);
  });
});

describe('group snapshot plan: pre-provisioned groups', function () {
  const pre = (options: Parameters<typeof group>[0] = {}) =>
    group({ contentName: 'pre', noClass: true, ...options });

  const cases: { name: string; obs: GroupObservation; want: string[] }[] = [
    {
      name: 'binds the named content (uid) and mirrors it',
      obs: observe({
        group: pre(),
        contents: [
          groupContent({
            name: 'pre',
            uid: null,
            preprovisioned: true,
            status: { volumeGroupSnapshotHandle: 'group-1', readyToUse: true },
          }),
        ],
      }),
      want: [
        'bind pre uid=uid-g',
        'status {"boundVolumeGroupSnapshotContentName":"pre","readyToUse":true}',
        'Normal GroupSnapshotReady: GroupSnapshot ns/g is ready to use.',
      ],
    },
    {
      name: "copies the group's class into the content",
      obs: observe({
        group: pre({ className: 'gold', noClass: false }),
        contents: [groupContent({ name: 'pre', uid: null, preprovisioned: true })],
      }),
      want: [
        'bind pre uid=uid-g class=gold',
        'status {"boundVolumeGroupSnapshotContentName":"pre","readyToUse":false}',
      ],
    },
    {
      name: 'already bound with a class: left alone',
      obs: observe({
        group: pre({ status: { boundVolumeGroupSnapshotContentName: 'pre', readyToUse: false } }),
        contents: [groupContent({ name: 'pre', preprovisioned: true, className: 'gold' })],
      }),
      want: ['finalizer +bound'],
    },
    {
      name: 'the named content does not exist',
      obs: observe({ group: pre() }),
      want: [
        `status {"error":{"time":"${NOW}","message":"VolumeGroupSnapshotContent is missing"},"readyToUse":false}`,
        'Warning GroupSnapshotContentMissing: VolumeGroupSnapshotContent is missing',
        'retry: group snapshot ns/g requests an non-existing group snapshot content pre',
      ],
    },
    {
      name: 'the named content is dynamic',
      obs: observe({ group: pre(), contents: [groupContent({ name: 'pre' })] }),
      want: [
        `status {"error":{"time":"${NOW}","message":"VolumeGroupSnapshotContent is dynamically provisioned while expecting a pre-provisioned one"},"readyToUse":false}`,
        'Warning GroupSnapshotContentMismatch: VolumeGroupSnapshotContent is dynamically provisioned while expecting a pre-provisioned one',
        'retry: VolumeGroupSnapshotContent is dynamically provisioned while expecting a pre-provisioned one',
      ],
    },
    {
      name: 'the named content points at another group',
      obs: observe({
        group: pre(),
        contents: [
          groupContent({ name: 'pre', uid: null, groupName: 'other', preprovisioned: true }),
        ],
      }),
      want: [
        `status {"error":{"time":"${NOW}","message":"VolumeGroupSnapshotContent [pre] is bound to a different group snapshot"},"readyToUse":false}`,
        'Warning GroupSnapshotContentMisbound: VolumeGroupSnapshotContent [pre] is bound to a different group snapshot',
        'retry: VolumeGroupSnapshotContent [pre] is bound to a different group snapshot',
      ],
    },
  ];

  for (const { name, obs, want } of cases) {
    it(name, function () {
      expect(summary(planGroupSnapshot(obs))).to.deep.equal(want);
    });
  }
});

describe('group snapshot plan: deletion', function () {
  const member = (name: string, options: { deleting?: boolean } = {}) =>
    buildSnapshot({
      name,
      namespace: NS,
      uid: `uid-${name}`,
      pvc: 'data-a',
      deletionTimestamp: options.deleting ? DELETED_AT : undefined,
    });
  const deleting = (
    status: VolumeGroupSnapshot['status'] = {
      boundVolumeGroupSnapshotContentName: CONTENT,
    },
  ) => group({ deleting: true, finalizers: [GROUP_BOUND], status });

  const restoring: PersistentVolumeClaim = buildPvc({
    name: 'restore',
    namespace: NS,
    restoreFrom: 'm1',
    phase: 'Pending',
  });

  const cases: { name: string; obs: GroupObservation; want: string[] }[] = [
    {
      name: 'Delete: the content marked and deleted, the members deleted, the finalizer kept',
      obs: observe({
        group: deleting(),
        contents: [groupContent()],
        members: [member('m1'), member('m2', { deleting: true })],
      }),
      want: [`annotate-being-deleted ${CONTENT}`, `delete ${CONTENT}`, 'delete-member m1'],
    },
    {
      name: 'Retain: the content stays, the members go, the finalizer goes',
      obs: observe({
        group: deleting(),
        contents: [groupContent({ policy: 'Retain' })],
        members: [member('m1')],
      }),
      want: [`annotate-being-deleted ${CONTENT}`, 'delete-member m1', 'finalizer -bound'],
    },
    {
      name: 'Delete, content already being deleted and marked: waits for it',
      obs: observe({
        group: deleting(),
        contents: [
          groupContent({
            deleting: true,
            annotations: { [ANN_VOLUME_GROUP_SNAPSHOT_BEING_DELETED]: 'yes' },
          }),
        ],
      }),
      want: [],
    },
    {
      name: 'the content is gone: the finalizer goes',
      obs: observe({ group: deleting() }),
      want: ['finalizer -bound'],
    },
    {
      name: 'a dynamic group whose status was never written: its groupsnapcontent-<uid>',
      obs: observe({ group: deleting({}), contents: [groupContent()] }),
      want: [`annotate-being-deleted ${CONTENT}`, `delete ${CONTENT}`],
    },
    {
      name: 'a content bound to another group is never touched',
      obs: observe({ group: deleting(), contents: [groupContent({ uid: 'uid-other' })] }),
      want: ['finalizer -bound'],
    },
    {
      name: 'a member is being restored from: refused',
      obs: observe({
        group: deleting(),
        contents: [groupContent()],
        members: [member('m1')],
        restoringPvcs: [restoring],
      }),
      want: [
        'Warning SnapshotDeletePending: Snapshot ns/m1 belonging to VolumeGroupSnapshot ns/g is being used to restore a PVC',
        'retry: Snapshot ns/m1 belonging to VolumeGroupSnapshot ns/g is being used to restore a PVC: snapshot is in use, will retry deletion',
      ],
    },
    {
      name: 'without our finalizer: nothing (deletion already processed)',
      obs: observe({
        group: group({ deleting: true, status: { boundVolumeGroupSnapshotContentName: CONTENT } }),
        contents: [groupContent()],
      }),
      want: [],
    },
    {
      name: 'a class problem does not block deletion',
      obs: observe({
        group: {
          ...deleting(),
          spec: { ...deleting().spec, volumeGroupSnapshotClassName: 'gone' },
        },
        contents: [groupContent({ policy: 'Retain' })],
      }),
      want: [`annotate-being-deleted ${CONTENT}`, 'finalizer -bound'],
    },
  ];

  for (const { name, obs, want } of cases) {
    it(name, function () {
      expect(summary(planGroupSnapshot(obs))).to.deep.equal(want);
    });
  }
});

describe('group snapshot plan: contents', function () {
  it('adds the bound finalizer to a bound content', function () {
    expect(planGroupContent(groupContent()).actions).to.deep.equal([
      { type: 'addGroupContentFinalizer' },
    ]);
  });

  it('leaves a pre-bound, a protected or a deleted content alone', function () {
    expect(
      planGroupContent(groupContent({ uid: null, preprovisioned: true })).actions,
    ).to.deep.equal([]);
    expect(planGroupContent(groupContent({ deleting: true })).actions).to.deep.equal([]);
    const protectedContent = groupContent();
    protectedContent.metadata.finalizers = [FINALIZER_VOLUME_GROUP_SNAPSHOT_CONTENT_BOUND];
    expect(planGroupContent(protectedContent).actions).to.deep.equal([]);
  });

  it('rejects a content with both or neither of its sources', function () {
    const neither = groupContent();
    neither.spec.source = {};
    const both = groupContent();
    both.spec.source.groupSnapshotHandles = {
      volumeGroupSnapshotHandle: 'g',
      volumeSnapshotHandles: [],
    };
    for (const content of [neither, both]) {
      const plan = planGroupContent(content);
      expect(plan.retry).to.equal(
        'Exactly one of GroupSnapshotHandles and VolumeHandles should be specified',
      );
      expect(plan.actions[0]).to.include({ reason: 'GroupContentValidationError' });
    }
  });
});

describe('group snapshot plan: helpers', function () {
  it('chooseDefaultGroupClass needs exactly one default of the driver', function () {
    const a = buildGroupClass({ name: 'a', driver: DRIVER, isDefault: true });
    const b = buildGroupClass({ name: 'b', driver: DRIVER });
    expect(chooseDefaultGroupClass([a, b], DRIVER)).to.deep.equal({ class: a });
    expect(chooseDefaultGroupClass([a, b], 'other')).to.deep.equal({
      error: 'cannot find default group snapshot class',
    });
  });

  it('groupSnapshotterSecretRef resolves the templates a group allows', function () {
    const params = (name: string, namespace: string) => ({
      [PARAM_GROUP_SNAPSHOTTER_SECRET_NAME]: name,
      [PARAM_GROUP_SNAPSHOTTER_SECRET_NAMESPACE]: namespace,
    });
    expect(groupSnapshotterSecretRef(undefined, 'c', group())).to.deep.equal({});
    expect(
      groupSnapshotterSecretRef(
        params('${volumegroupsnapshot.name}-${volumegroupsnapshotcontent.name}', 'x'),
        'c',
        group(),
      ),
    ).to.deep.equal({ ref: { name: 'g-c', namespace: 'x' } });
    // the namespace never sees the group's name, and without a group only the content's name
    expect(groupSnapshotterSecretRef(params('s', '${volumegroupsnapshot.name}'), 'c', group()))
      .to.have.property('error')
      .that.includes('uses ${volumegroupsnapshot.name}');
    expect(groupSnapshotterSecretRef(params('${volumegroupsnapshot.name}', 'x'), 'c', undefined))
      .to.have.property('error')
      .that.includes('allowed: ${volumegroupsnapshotcontent.name}');
    expect(groupSnapshotterSecretRef(params('s', 'Not_A_Namespace'), 'c', group())).to.deep.equal({
      error:
        'csi.storage.k8s.io/group-snapshotter-secret-namespace resolves to "Not_A_Namespace", not a namespace name',
    });
  });
});
