import { expect } from 'chai';
import type {
  V1CSINode,
  V1Node,
  V1PersistentVolume,
  V1PersistentVolumeClaim,
  V1StorageClass,
} from '@kubernetes/client-node';
import {
  ANN_DELETION_SECRET_NAME,
  ANN_PROVISIONED_BY,
  ANN_SELECTED_NODE,
  ANN_STORAGE_PROVISIONER,
  DEFAULT_PROVISIONER_SETTINGS,
  FINALIZER_PV,
  FINALIZER_SNAPSHOT_SOURCE,
  PROVISIONER_IDENTITY_KEY,
  abandonedProvisionings,
  accessibilityRequirements,
  buildPersistentVolume,
  checkCreatedVolume,
  createVolumeOutcome,
  crossNamespaceRefusal,
  driverParameters,
  isRefusal,
  planProvision,
  pvFinalizers,
  shouldDeleteVolume,
  shouldProvision,
  volumeName,
  type CreatedVolume,
  type DriverCapabilities,
  type ProvisionInput,
  type ProvisionPlan,
  type ProvisionerSettings,
} from '../../../src/provisioner/plan.js';
import type { ReferenceGrant } from '../../../src/provisioner/reference-grant.js';
import {
  buildContent,
  buildPvc,
  buildSnapshot,
  buildStorageClass,
} from '../../support/fixtures.js';

const DRIVER = 'local.snapback.dev';
const PVC_UID = 'a1b2c3d4-0000-1111-2222-333344445555';
const SNAP_UID = 'f0f0f0f0-0000-1111-2222-333344445555';
const GI = 2 ** 30;
const settings: ProvisionerSettings = {
  ...DEFAULT_PROVISIONER_SETTINGS,
  driverName: DRIVER,
  identity: '1700000000000-1234-local.snapback.dev',
};
const capabilities: DriverCapabilities = {
  createDeleteVolume: true,
  createDeleteSnapshot: true,
  topology: true,
  singleNodeMultiWriter: false,
};

function pvc(
  overrides: { spec?: V1PersistentVolumeClaim['spec']; annotations?: Record<string, string> } = {},
) {
  const claim = buildPvc({
    name: 'data',
    namespace: 'ns',
    uid: PVC_UID,
    resourceVersion: '42',
    annotations: { [ANN_STORAGE_PROVISIONER]: DRIVER, ...overrides.annotations },
    storageClassName: 'local',
  });
  return { ...claim, spec: { ...claim.spec, ...overrides.spec } };
}

function storageClass(overrides: Partial<V1StorageClass> = {}): V1StorageClass {
  return {
    ...buildStorageClass({
      name: 'local',
      provisioner: DRIVER,
      reclaimPolicy: 'Delete',
      volumeBindingMode: 'Immediate',
      parameters: {},
    }),
    ...overrides,
  };
}

function snapshot(overrides: { ready?: boolean; restoreSize?: string; deleting?: boolean } = {}) {
  return buildSnapshot({
    name: 'snap',
    namespace: 'ns',
    uid: SNAP_UID,
    deletionTimestamp: overrides.deleting ? new Date().toISOString() : undefined,
    pvc: 'data',
    status: {
      boundVolumeSnapshotContentName: `snapcontent-${SNAP_UID}`,
      readyToUse: overrides.ready ?? true,
      restoreSize: overrides.restoreSize ?? '1Gi',
    },
  });
}

function content(overrides: { driver?: string; handle?: string | null; refUid?: string } = {}) {
  return buildContent({
    name: `snapcontent-${SNAP_UID}`,
    driver: overrides.driver ?? DRIVER,
    snapshotRef: { name: 'snap', namespace: 'ns', uid: overrides.refUid ?? SNAP_UID },
    volumeHandle: 'vol-src',
    status:
      overrides.handle === null
        ? { readyToUse: true }
        : { snapshotHandle: overrides.handle ?? 'snap-1', readyToUse: true },
  });
}

const fromSnapshot = { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 'snap' };

function input(overrides: Partial<ProvisionInput> = {}): ProvisionInput {
  return {
    pvc: pvc(),
    storageClass: storageClass(),
    settings,
    capabilities,
    csiNodes: [],
    nodes: [],
    ...overrides,
  };
}

function node(name: string, labels: Record<string, string>): V1Node {
  return { metadata: { name, labels } };
}

function csiNode(name: string, topologyKeys: string[]): V1CSINode {
  return { metadata: { name }, spec: { drivers: [{ name: DRIVER, nodeID: name, topologyKeys }] } };
}

const TOPOLOGY_KEY = 'topology.local.snapback.dev/node';

describe('provisioner plan', function () {
  describe('shouldProvision', function () {
    const table: Array<[string, V1PersistentVolumeClaim, V1StorageClass | undefined, boolean]> = [
      ['an annotated PVC of our class', pvc(), storageClass(), true],
      [
        'the beta annotation',
        pvc({
          annotations: {
            [ANN_STORAGE_PROVISIONER]: undefined as unknown as string,
            'volume.beta.kubernetes.io/storage-provisioner': DRIVER,
          },
        }),
        storageClass(),
        true,
      ],
      [
        'no provisioner annotation yet',
        { ...pvc(), metadata: { ...pvc().metadata, annotations: {} } },
        storageClass(),
        false,
      ],
      [
        'annotated for another provisioner',
        pvc({ annotations: { [ANN_STORAGE_PROVISIONER]: 'other' } }),
        storageClass(),
        false,
      ],
      [
        'already bound',
        pvc({ spec: { ...pvc().spec, volumeName: 'pv-1' } }),
        storageClass(),
        false,
      ],
      ['its class does not exist', pvc(), undefined, false],
      ['a class of another provisioner', pvc(), storageClass({ provisioner: 'other' }), false],
      [
        'WaitForFirstConsumer without a selected node',
        pvc(),
        storageClass({ volumeBindingMode: 'WaitForFirstConsumer' }),
        false,
      ],
      [
        'WaitForFirstConsumer with a selected node',
        pvc({ annotations: { [ANN_SELECTED_NODE]: 'n1' } }),
        storageClass({ volumeBindingMode: 'WaitForFirstConsumer' }),
        true,
      ],
    ];
    for (const [name, claim, cls, expected] of table) {
      it(`${name}: ${expected ? 'provision' : 'skip'}`, function () {
        const annotations = claim.metadata?.annotations ?? {};
        for (const key of Object.keys(annotations))
          if (annotations[key] === undefined) delete annotations[key];
        expect(shouldProvision(claim, cls, DRIVER).provision).to.equal(expected);
      });
    }
  });

  it('names volumes pvc-<uid>, or a cut UID', function () {
    expect(volumeName(PVC_UID, settings)).to.equal(`pvc-${PVC_UID}`);
    expect(
      volumeName(PVC_UID, { ...settings, volumeNamePrefix: 'vol', volumeNameUuidLength: 6 }),
    ).to.equal('vol-a1b2c3');
  });

  describe('planProvision', function () {
    it('plans a blank volume: name, size, mount capability, parameters', function () {
      const plan = planProvision(
        input({
          storageClass: storageClass({
            parameters: { 'csi.storage.k8s.io/fstype': 'ext4', type: 'fast' },
            mountOptions: ['noatime'],
          }),
        }),
      );
      expect(isRefusal(plan)).to.equal(false);
      expect((plan as ProvisionPlan).call).to.deep.equal({
        name: `pvc-${PVC_UID}`,
        requiredBytes: GI,
        parameters: { type: 'fast' },
        capabilities: [
          {
            accessMode: 'SINGLE_NODE_WRITER',
            accessType: { mount: { fsType: 'ext4', mountFlags: ['noatime'] } },
          },
        ],
        secretRef: undefined,
      });
      expect((plan as ProvisionPlan).protectSnapshot).to.equal(undefined);
    });

    it('plans a restore from a ready VolumeSnapshot: its handle and a protecting finalizer', function () {
      const plan = planProvision(
        input({
          pvc: pvc({ spec: { ...pvc().spec, dataSource: fromSnapshot } }),
          snapshot: snapshot(),
          content: content(),
        }),
      ) as ProvisionPlan;
      expect(plan.call.snapshotId).to.equal('snap-1');
      expect(plan.protectSnapshot).to.deep.equal({ namespace: 'ns', name: 'snap' });
    });

    const refusals: Array<[string, Partial<ProvisionInput>, RegExp, boolean?]> = [
      [
        'a size below the restoreSize, saying how much to ask for',
        {
          pvc: pvc({ spec: { ...pvc().spec, dataSource: fromSnapshot } }),
          snapshot: snapshot({ restoreSize: '2Gi' }),
          content: content(),
        },
        /requested volume size 1073741824 is less than the size 2147483648 for the source snapshot snap: request at least 2Gi/,
      ],
      [
        'a snapshot that is not ready',
        {
          pvc: pvc({ spec: { ...pvc().spec, dataSource: fromSnapshot } }),
          snapshot: snapshot({ ready: false }),
          content: content(),
        },
        /snapshot snap is not Ready/,
      ],
      [
        'a snapshot that does not exist',
        { pvc: pvc({ spec: { ...pvc().spec, dataSource: fromSnapshot } }) },
        /error getting snapshot snap from api server/,
      ],
      [
        'a snapshot being deleted',
        {
          pvc: pvc({ spec: { ...pvc().spec, dataSource: fromSnapshot } }),
          snapshot: snapshot({ deleting: true }),
          content: content(),
        },
        /snapshot snap is being deleted/,
      ],
      [
        'a content of another driver',
        {
          pvc: pvc({ spec: { ...pvc().spec, dataSource: fromSnapshot } }),
          snapshot: snapshot(),
          content: content({ driver: 'x' }),
        },
        /snapshot snap not bound/,
      ],
      [
        'a content bound to another snapshot',
        {
          pvc: pvc({ spec: { ...pvc().spec, dataSource: fromSnapshot } }),
          snapshot: snapshot(),
          content: content({ refUid: 'other' }),
        },
        /snapshot snap not bound/,
      ],
      [
        'a content without a handle',
        {
          pvc: pvc({ spec: { ...pvc().spec, dataSource: fromSnapshot } }),
          snapshot: snapshot(),
          content: content({ handle: null }),
        },
        /snapshot handle snap is not available/,
      ],
      [
        'a VolumeSnapshot of the wrong API group',
        {
          pvc: pvc({
            spec: { ...pvc().spec, dataSource: { ...fromSnapshot, apiGroup: 'example.com' } },
          }),
        },
        /does not belong to the right APIGroup/,
      ],
      [
        'a driver without snapshots',
        {
          pvc: pvc({ spec: { ...pvc().spec, dataSource: fromSnapshot } }),
          capabilities: { ...capabilities, createDeleteSnapshot: false },
        },
        /CREATE_DELETE_SNAPSHOT capability is not reported/,
      ],
      [
        'a claim selector',
        { pvc: pvc({ spec: { ...pvc().spec, selector: { matchLabels: { a: 'b' } } } }) },
        /claim Selector is not supported/,
      ],
      [
        'an unknown reserved parameter',
        { storageClass: storageClass({ parameters: { 'csi.storage.k8s.io/bogus': 'x' } }) },
        /unknown parameter key "csi.storage.k8s.io\/bogus"/,
      ],
      [
        'two fstype keys',
        {
          storageClass: storageClass({
            parameters: { fstype: 'ext4', 'csi.storage.k8s.io/fstype': 'xfs' },
          }),
        },
        /fstype specified in parameters with both/,
      ],
      [
        'a populator data source (left to the populator)',
        {
          pvc: pvc({
            spec: {
              ...pvc().spec,
              dataSourceRef: { apiGroup: 'example.com', kind: 'Backup', name: 'b' },
            },
          }),
        },
        /assuming an external populator/,
        true,
      ],
    ];
    for (const [name, overrides, message, ignore] of refusals) {
      it(`refuses ${name}`, function () {
        const plan = planProvision(input(overrides));
        expect(isRefusal(plan), JSON.stringify(plan)).to.equal(true);
        expect((plan as { message: string }).message).to.match(message);
        expect(Boolean((plan as { ignore?: boolean }).ignore)).to.equal(Boolean(ignore));
      });
    }

    it('accepts a larger volume than the snapshot (the driver grows it)', function () {
      const plan = planProvision(
        input({
          pvc: pvc({
            spec: {
              ...pvc().spec,
              dataSource: fromSnapshot,
              resources: { requests: { storage: '3Gi' } },
            },
          }),
          snapshot: snapshot({ restoreSize: '2Gi' }),
          content: content(),
        }),
      );
      expect(isRefusal(plan)).to.equal(false);
    });

    it('allows a deleting snapshot that already carries the provisioner finalizer', function () {
      const vs = snapshot({ deleting: true });
      vs.metadata.finalizers = [FINALIZER_SNAPSHOT_SOURCE];
      const plan = planProvision(
        input({
          pvc: pvc({ spec: { ...pvc().spec, dataSource: fromSnapshot } }),
          snapshot: vs,
          content: content(),
        }),
      );
      expect(isRefusal(plan)).to.equal(false);
    });

    it('resolves secret templates and records them', function () {
      const plan = planProvision(
        input({
          storageClass: storageClass({
            parameters: {
              'csi.storage.k8s.io/provisioner-secret-name': '${pvc.name}-creds',
              'csi.storage.k8s.io/provisioner-secret-namespace': '${pvc.namespace}',
              'csi.storage.k8s.io/node-stage-secret-name': 'stage',
              'csi.storage.k8s.io/node-stage-secret-namespace': 'kube-system',
            },
          }),
        }),
      ) as ProvisionPlan;
      expect(plan.call.secretRef).to.deep.equal({ name: 'data-creds', namespace: 'ns' });
      expect(plan.secretRefs.nodeStage).to.deep.equal({ name: 'stage', namespace: 'kube-system' });
      expect(plan.call.parameters).to.deep.equal({});
    });

    it('maps access modes and block mode', function () {
      const plan = planProvision(
        input({
          pvc: pvc({
            spec: {
              ...pvc().spec,
              accessModes: ['ReadOnlyMany', 'ReadWriteMany'],
              volumeMode: 'Block',
            },
          }),
        }),
      ) as ProvisionPlan;
      expect(plan.call.capabilities).to.deep.equal([
        { accessMode: 'MULTI_NODE_READER_ONLY', accessType: { block: true } },
        { accessMode: 'MULTI_NODE_MULTI_WRITER', accessType: { block: true } },
      ]);
    });

    describe('--prevent-volume-mode-conversion', function () {
      const restore = (
        options: { source?: 'Filesystem' | 'Block'; target?: string; allow?: string },
        prevent = true,
      ) => {
        const vsc = content();
        if (options.source) vsc.spec.sourceVolumeMode = options.source;
        if (options.allow !== undefined) {
          vsc.metadata!.annotations = {
            'snapshot.storage.kubernetes.io/allow-volume-mode-change': options.allow,
          };
        }
        return planProvision(
          input({
            pvc: pvc({
              spec: { ...pvc().spec, dataSource: fromSnapshot, volumeMode: options.target },
            }),
            snapshot: snapshot(),
            content: vsc,
            settings: { ...settings, preventVolumeModeConversion: prevent },
          }),
        );
      };
      // the annotation is read as Go's strconv.ParseBool reads it
      const cases: Array<[string, Parameters<typeof restore>, RegExp | undefined]> = [
        ['same mode', [{ source: 'Filesystem', target: 'Filesystem' }], undefined],
        ['no source mode recorded', [{ target: 'Block' }], undefined],
        ['no target mode', [{ source: 'Block' }], undefined],
        [
          'a change without the annotation',
          [{ source: 'Filesystem', target: 'Block' }],
          /\(volumeMode Block\) modifies the mode of the source volume \(Filesystem\).*allow-volume-mode-change annotation is not present on snapshotcontent snapcontent-.*use volumeMode Filesystem/,
        ],
        ...['1', 't', 'T', 'TRUE', 'true', 'True'].map(
          (allow): [string, Parameters<typeof restore>, RegExp | undefined] => [
            `a change allowed by "${allow}"`,
            [{ source: 'Filesystem', target: 'Block', allow }],
            undefined,
          ],
        ),
        ...['0', 'f', 'F', 'FALSE', 'false', 'False'].map(
          (allow): [string, Parameters<typeof restore>, RegExp | undefined] => [
            `a change refused by "${allow}"`,
            [{ source: 'Block', target: 'Filesystem', allow }],
            /allow-volume-mode-change is set to false on snapshotcontent/,
          ],
        ),
        ...['yes', 'on', ' true', 'tRUE', ''].map(
          (allow): [string, Parameters<typeof restore>, RegExp | undefined] => [
            `a change with the non-boolean "${allow}"`,
            [{ source: 'Block', target: 'Filesystem', allow }],
            new RegExp(`annotation on snapshotcontent \\S+ is "${allow}", not a boolean`),
          ],
        ),
        [
          'a change with the check switched off',
          [{ source: 'Filesystem', target: 'Block' }, false],
          undefined,
        ],
      ];
      for (const [title, args, refusal] of cases) {
        it(`${refusal ? 'refuses' : 'restores'}: ${title}`, function () {
          const plan = restore(...args);
          if (refusal) {
            expect(isRefusal(plan), JSON.stringify(plan)).to.equal(true);
            expect((plan as { message: string }).message).to.match(refusal);
          } else {
            expect(isRefusal(plan), JSON.stringify(plan)).to.equal(false);
            expect((plan as ProvisionPlan).call.snapshotId).to.equal('snap-1');
          }
        });
      }
    });

    it('adds the names with extra create metadata', function () {
      const plan = planProvision(
        input({ settings: { ...settings, extraCreateMetadata: true } }),
      ) as ProvisionPlan;
      expect(plan.call.parameters).to.deep.equal({
        'csi.storage.k8s.io/pvc/name': 'data',
        'csi.storage.k8s.io/pvc/namespace': 'ns',
        'csi.storage.k8s.io/pv/name': `pvc-${PVC_UID}`,
      });
    });
  });

  describe('accessibilityRequirements', function () {
    it('asks for nothing when no node registered the driver', function () {
      expect(accessibilityRequirements(input())).to.deep.equal({ requisite: [], preferred: [] });
    });
    it('aggregates the segments of nodes running the driver', function () {
      const result = accessibilityRequirements(
        input({
          csiNodes: [csiNode('n1', [TOPOLOGY_KEY]), csiNode('n2', [TOPOLOGY_KEY])],
          nodes: [
            node('n1', { [TOPOLOGY_KEY]: 'n1' }),
            node('n2', { [TOPOLOGY_KEY]: 'n2' }),
            node('n3', {}),
          ],
        }),
      );
      expect(result).to.deep.equal({
        requisite: [{ [TOPOLOGY_KEY]: 'n1' }, { [TOPOLOGY_KEY]: 'n2' }],
        preferred: [{ [TOPOLOGY_KEY]: 'n1' }, { [TOPOLOGY_KEY]: 'n2' }],
      });
    });
    it('prefers the selected node', function () {
      const n2 = node('n2', { [TOPOLOGY_KEY]: 'n2' });
      const result = accessibilityRequirements(
        input({
          selectedNode: n2,
          csiNodes: [csiNode('n1', [TOPOLOGY_KEY]), csiNode('n2', [TOPOLOGY_KEY])],
          nodes: [node('n1', { [TOPOLOGY_KEY]: 'n1' }), n2],
        }),
      );
      expect(result)
        .to.have.property('preferred')
        .that.deep.equals([{ [TOPOLOGY_KEY]: 'n2' }, { [TOPOLOGY_KEY]: 'n1' }]);
    });
    it('uses the class’s allowed topologies', function () {
      const result = accessibilityRequirements(
        input({
          storageClass: storageClass({
            allowedTopologies: [{ matchLabelExpressions: [{ key: 'zone', values: ['a', 'b'] }] }],
          }),
        }),
      );
      expect(result)
        .to.have.property('requisite')
        .that.deep.equals([{ zone: 'a' }, { zone: 'b' }]);
    });
    it('refuses a selected node that does not run the driver', function () {
      const result = accessibilityRequirements(input({ selectedNode: node('n9', {}) }));
      expect(result)
        .to.have.property('message')
        .that.matches(/CSINode n9 does not list driver/);
    });
  });

  describe('checkCreatedVolume', function () {
    const call = { name: 'pvc-x', requiredBytes: GI, parameters: {}, capabilities: [] };
    const created: CreatedVolume = {
      volumeId: 'v',
      capacityBytes: GI,
      volumeContext: {},
      accessibleTopology: [],
      hasContentSource: false,
    };
    it('accepts the requested size, or an unknown one', function () {
      expect(checkCreatedVolume(call, created)).to.equal(undefined);
      expect(checkCreatedVolume(call, { ...created, capacityBytes: 0 })).to.equal(undefined);
    });
    it('rejects a smaller volume', function () {
      expect(checkCreatedVolume(call, { ...created, capacityBytes: 1 })).to.match(
        /less than requested/,
      );
    });
    it('rejects a restore the driver did not restore', function () {
      expect(checkCreatedVolume({ ...call, snapshotId: 's' }, created)).to.equal(
        'volume content source missing',
      );
    });
  });

  describe('buildPersistentVolume', function () {
    const plan = planProvision(input()) as ProvisionPlan;
    const created: CreatedVolume = {
      volumeId: 'vol-123',
      capacityBytes: 2 * GI,
      volumeContext: { image: '/var/lib/x.img' },
      accessibleTopology: [{ [TOPOLOGY_KEY]: 'n1' }],
      hasContentSource: false,
    };

    it('binds by claimRef, records the provisioner and the volume, with node affinity', function () {
      const pv = buildPersistentVolume(input(), plan, created);
      expect(pv.metadata).to.deep.equal({
        name: `pvc-${PVC_UID}`,
        annotations: {
          [ANN_PROVISIONED_BY]: DRIVER,
          [ANN_DELETION_SECRET_NAME]: '',
          'volume.kubernetes.io/provisioner-deletion-secret-namespace': '',
        },
        finalizers: [FINALIZER_PV],
      });
      expect(pv.spec).to.deep.equal({
        accessModes: ['ReadWriteOnce'],
        capacity: { storage: '2Gi' },
        persistentVolumeReclaimPolicy: 'Delete',
        storageClassName: 'local',
        claimRef: {
          kind: 'PersistentVolumeClaim',
          apiVersion: 'v1',
          namespace: 'ns',
          name: 'data',
          uid: PVC_UID,
          resourceVersion: '42',
        },
        csi: {
          driver: DRIVER,
          volumeHandle: 'vol-123',
          volumeAttributes: {
            [PROVISIONER_IDENTITY_KEY]: settings.identity,
            image: '/var/lib/x.img',
          },
        },
        nodeAffinity: {
          required: {
            nodeSelectorTerms: [
              { matchExpressions: [{ key: TOPOLOGY_KEY, operator: 'In', values: ['n1'] }] },
            ],
          },
        },
      });
    });

    it('keeps Retain without our finalizer, and uses the requested size when the driver gave none', function () {
      const retain = input({ storageClass: storageClass({ reclaimPolicy: 'Retain' }) });
      const pv = buildPersistentVolume(retain, planProvision(retain) as ProvisionPlan, {
        ...created,
        capacityBytes: 0,
        accessibleTopology: [],
      });
      expect(pv.spec?.persistentVolumeReclaimPolicy).to.equal('Retain');
      expect(pv.metadata?.finalizers).to.equal(undefined);
      expect(pv.spec?.capacity).to.deep.equal({ storage: '1Gi' });
      expect(pv.spec?.nodeAffinity).to.equal(undefined);
    });
  });

  describe('release', function () {
    const pv = (
      phase: string,
      policy: string,
      extra: Partial<V1PersistentVolume['metadata']> = {},
    ): V1PersistentVolume => ({
      metadata: {
        name: 'pvc-1',
        annotations: { [ANN_PROVISIONED_BY]: DRIVER },
        finalizers: [FINALIZER_PV],
        ...extra,
      },
      spec: { persistentVolumeReclaimPolicy: policy },
      status: { phase },
    });
    const table: Array<[string, V1PersistentVolume, boolean]> = [
      ['Released with Delete', pv('Released', 'Delete'), true],
      ['Released with Retain', pv('Released', 'Retain'), false],
      ['Bound with Delete', pv('Bound', 'Delete'), false],
      [
        'another provisioner’s',
        pv('Released', 'Delete', { annotations: { [ANN_PROVISIONED_BY]: 'x' } }),
        false,
      ],
      [
        'being deleted, our finalizer still on',
        pv('Released', 'Delete', { deletionTimestamp: new Date() }),
        true,
      ],
      [
        'being deleted, our finalizer gone',
        pv('Released', 'Delete', { deletionTimestamp: new Date(), finalizers: [] }),
        false,
      ],
    ];
    for (const [name, volume, expected] of table) {
      it(`${name}: ${expected ? 'delete the volume' : 'keep it'}`, function () {
        expect(shouldDeleteVolume(volume, DRIVER)).to.equal(expected);
      });
    }

    it('adds our finalizer to a Bound Delete PV and drops it for Retain', function () {
      expect(
        pvFinalizers(
          pv('Bound', 'Delete', { finalizers: ['kubernetes.io/pv-protection'] }),
          DRIVER,
        ),
      ).to.deep.equal(['kubernetes.io/pv-protection', FINALIZER_PV]);
      expect(pvFinalizers(pv('Bound', 'Retain'), DRIVER)).to.deep.equal([]);
      expect(pvFinalizers(pv('Bound', 'Delete'), DRIVER)).to.equal(undefined);
    });
  });

  describe('a dataSourceRef in another namespace (CrossNamespaceVolumeDataSource)', function () {
    const on = { ...settings, crossNamespaceVolumeDataSource: true };
    const ref = (namespace: string, kind = 'VolumeSnapshot', apiGroup?: string) => ({
      apiGroup: apiGroup ?? (kind === 'VolumeSnapshot' ? 'snapshot.storage.k8s.io' : undefined),
      kind,
      name: 'snap',
      namespace,
    });
    const claimFrom = (dataSourceRef: ReturnType<typeof ref>) =>
      pvc({ spec: { ...pvc().spec, dataSourceRef } });
    const grant = (
      namespace: string,
      from: NonNullable<ReferenceGrant['spec']>['from'],
      to: NonNullable<ReferenceGrant['spec']>['to'],
    ): ReferenceGrant => ({
      apiVersion: 'gateway.networking.k8s.io/v1beta1',
      kind: 'ReferenceGrant',
      metadata: { name: 'g', namespace },
      spec: { from, to },
    });
    const pvcsOfNs = [{ group: '', kind: 'PersistentVolumeClaim', namespace: 'ns' }];
    const snapshots = [{ group: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot' }];
    const snapNamed = (name: string) => [{ ...snapshots[0]!, name }];

    type Grants = ProvisionInput['referenceGrants'];
    const table: Array<[string, Partial<ProvisionInput>, RegExp | undefined, Grants?]> = [
      [
        'gate off: refused, naming the gate and the flag',
        { settings },
        /CrossNamespaceVolumeDataSource feature is disabled: the snapback controller must run with --feature-gates=CrossNamespaceVolumeDataSource=true/,
      ],
      [
        'gate on, no ReferenceGrant API',
        { settings: on },
        /does not serve referencegrants.gateway.networking.k8s.io\/v1beta1: install the Gateway API ReferenceGrant CRD/,
        'not-served',
      ],
      [
        'gate on, no grant',
        { settings: on },
        /accessing src\/snap of VolumeSnapshot dataSource from ns\/data isn't allowed: create a ReferenceGrant in namespace src/,
        [],
      ],
      [
        'a grant for every snapshot',
        { settings: on },
        undefined,
        [grant('src', pvcsOfNs, snapshots)],
      ],
      [
        'a grant for this snapshot',
        { settings: on },
        undefined,
        [grant('src', pvcsOfNs, snapNamed('snap'))],
      ],
      [
        'a grant for another snapshot',
        { settings: on },
        /isn't allowed/,
        [grant('src', pvcsOfNs, snapNamed('other'))],
      ],
      [
        'a grant from another namespace',
        { settings: on },
        /isn't allowed/,
        [grant('src', [{ ...pvcsOfNs[0]!, namespace: 'elsewhere' }], snapshots)],
      ],
      [
        'a grant from another kind',
        { settings: on },
        /isn't allowed/,
        [grant('src', [{ ...pvcsOfNs[0]!, kind: 'Pod' }], snapshots)],
      ],
      [
        'a grant to PVCs, not snapshots',
        { settings: on },
        /isn't allowed/,
        [grant('src', pvcsOfNs, [{ group: '', kind: 'PersistentVolumeClaim' }])],
      ],
      [
        'a grant kept in another namespace',
        { settings: on },
        /isn't allowed/,
        [grant('ns', pvcsOfNs, snapshots)],
      ],
      [
        'one refusing and one allowing grant',
        { settings: on },
        undefined,
        [grant('src', pvcsOfNs, snapNamed('other')), grant('src', pvcsOfNs, snapshots)],
      ],
    ];
    for (const [name, overrides, refused, grants] of table) {
      it(`${name}: ${refused ? 'refuse' : 'restore'}`, function () {
        const given = input({ pvc: claimFrom(ref('src')), referenceGrants: grants, ...overrides });
        const refusal = crossNamespaceRefusal(given);
        if (refused) {
          expect(refusal?.message).to.match(refused);
          expect(planProvision(given)).to.deep.equal(refusal);
        } else {
          expect(refusal).to.equal(undefined);
        }
      });
    }

    it('with a grant, restores from the snapshot in its own namespace and guards it there', function () {
      const source = snapshot();
      source.metadata.namespace = 'src';
      const bound = content();
      bound.spec.volumeSnapshotRef.namespace = 'src';
      const plan = planProvision(
        input({
          pvc: claimFrom(ref('src')),
          settings: on,
          referenceGrants: [grant('src', pvcsOfNs, snapshots)],
          snapshot: source,
          content: bound,
        }),
      ) as ProvisionPlan;
      expect(plan.call.snapshotId).to.equal('snap-1');
      expect(plan.protectSnapshot).to.deep.equal({ namespace: 'src', name: 'snap' });
    });

    it('a clone from another namespace needs a grant to PVCs, then is refused as unsupported', function () {
      const clone = claimFrom(ref('src', 'PersistentVolumeClaim'));
      expect(
        crossNamespaceRefusal(
          input({ pvc: clone, settings: on, referenceGrants: [grant('src', pvcsOfNs, snapshots)] }),
        )?.message,
      ).to.match(/isn't allowed/);
      const granted = input({
        pvc: clone,
        settings: on,
        referenceGrants: [grant('src', pvcsOfNs, [{ group: '', kind: 'PersistentVolumeClaim' }])],
      });
      expect(crossNamespaceRefusal(granted)).to.equal(undefined);
      expect((planProvision(granted) as { message: string }).message).to.match(
        /cloning from PersistentVolumeClaim snap is not supported/,
      );
    });

    it('a dataSourceRef in the PVC’s own namespace needs no grant when the gate is on', function () {
      expect(crossNamespaceRefusal(input({ pvc: claimFrom(ref('ns')), settings: on }))).to.equal(
        undefined,
      );
    });
  });

  describe('a CreateVolume without a final answer', function () {
    const grpcError = (code: number) => Object.assign(new Error(`${code}`), { code, details: 'x' });
    const outcomes: Array<[string, unknown, 'final' | 'in-background']> = [
      ['DEADLINE_EXCEEDED (the call timed out)', grpcError(4), 'in-background'],
      ['CANCELLED', grpcError(1), 'in-background'],
      ['UNAVAILABLE (the driver restarts)', grpcError(14), 'in-background'],
      ['ABORTED (an operation pending for the name)', grpcError(10), 'in-background'],
      ['an error without a gRPC code', new Error('socket hang up'), 'in-background'],
      ['INVALID_ARGUMENT', grpcError(3), 'final'],
      ['RESOURCE_EXHAUSTED (out of space)', grpcError(8), 'final'],
      ['ALREADY_EXISTS (the name is taken by another volume)', grpcError(6), 'final'],
      ['INTERNAL', grpcError(13), 'final'],
    ];
    for (const [name, error, expected] of outcomes) {
      it(`${name}: ${expected}`, function () {
        expect(createVolumeOutcome(error)).to.equal(expected);
      });
    }

    const inFlight = [
      { uid: 'uid-1', claimKey: 'ns/data', tag: 'first' },
      { uid: 'uid-2', claimKey: 'ns/other', tag: 'other claim' },
    ];
    const withUid = (uid: string, deleting = false) => {
      const claim = pvc();
      claim.metadata!.uid = uid;
      if (deleting) claim.metadata!.deletionTimestamp = new Date(0);
      return claim;
    };
    const abandoned: Array<[string, V1PersistentVolumeClaim | undefined, string[]]> = [
      ['the PVC is still there', withUid('uid-1'), []],
      ['the PVC is gone', undefined, ['first']],
      ['the PVC is being deleted', withUid('uid-1', true), ['first']],
      ['a new PVC took the name', withUid('uid-3'), ['first']],
    ];
    for (const [name, claim, expected] of abandoned) {
      it(`${name}: ${expected.length > 0 ? 'finish and delete the volume' : 'keep provisioning'}`, function () {
        expect(
          abandonedProvisionings(inFlight, 'ns/data', claim).map((entry) => entry.tag),
        ).to.deep.equal(expected);
      });
    }
  });

  it('driverParameters keeps plain keys and drops known reserved ones', function () {
    expect(
      driverParameters({
        a: 'b',
        'csi.storage.k8s.io/fstype': 'ext4',
        'csi.storage.k8s.io/node-stage-secret-name': 'x',
      }),
    ).to.deep.equal({ a: 'b' });
  });
});
