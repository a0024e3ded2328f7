import { expect } from 'chai';
import type * as k8s from '@kubernetes/client-node';
import type { V1PersistentVolume, V1PersistentVolumeClaim } from '@kubernetes/client-node';
import type { VolumeSnapshot, VolumeSnapshotContent } from '../../../src/api/snapshot.js';
import {
  Events,
  HttpKubeClient,
  PersistentVolumeClaims,
  PersistentVolumes,
  StorageClasses,
  type CoreEvent,
  type KubeObject,
} from '../../../src/kube/index.js';
import { ReferenceGrants, type ReferenceGrant } from '../../../src/provisioner/reference-grant.js';
import { VolumeSnapshotContents, VolumeSnapshots } from '../../../src/kube/resource.js';
import type { ControlPlane } from '../../support/control-plane.js';
import {
  createTestNamespace,
  deleteTestNamespace,
  kubeConfigFor,
  kubectl,
  sharedControlPlane,
} from '../../support/cluster.js';
import { waitFor } from '../../support/processes.js';
import { installSnapshotCrds } from '../stack/support.js';
import {
  TestDriver,
  claimOf,
  runProvisioner,
  startGatedApiServer,
  storageClassFor,
  type GatedApiServer,
  type RunningProvisioner,
} from './support.js';

const TIMEOUT = 60_000;
const CRD_NAME = 'referencegrants.gateway.networking.k8s.io';
const OWNER_LABEL = 'snapback.dev/test-owner';

/**
 * The ReferenceGrant CRD, reduced to what the provisioner reads: gateway.networking.k8s.io,
 * namespaced, version v1beta1 with spec.from[] {group, kind, namespace} and spec.to[]
 * {group, kind, name?}, as the Gateway API defines them.
 */
const referenceGrantCrd = JSON.stringify({
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: {
    name: CRD_NAME,
    labels: { [OWNER_LABEL]: 'provisioner-cross-namespace' },
    // *.k8s.io groups are protected; an "unapproved" value lets a test install it
    annotations: { 'api-approved.kubernetes.io': 'unapproved, reduced copy for snapback tests' },
  },
  spec: {
    group: 'gateway.networking.k8s.io',
    scope: 'Namespaced',
    names: {
      plural: 'referencegrants',
      singular: 'referencegrant',
      kind: 'ReferenceGrant',
      listKind: 'ReferenceGrantList',
      shortNames: ['refgrant'],
    },
    versions: [
      {
        name: 'v1beta1',
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              spec: {
                type: 'object',
                required: ['from', 'to'],
                properties: {
                  from: {
                    type: 'array',
                    minItems: 1,
                    maxItems: 16,
                    items: {
                      type: 'object',
                      required: ['group', 'kind', 'namespace'],
                      properties: {
                        group: { type: 'string', maxLength: 253 },
                        kind: { type: 'string', minLength: 1, maxLength: 63 },
                        namespace: { type: 'string', minLength: 1, maxLength: 63 },
                      },
                    },
                  },
                  to: {
                    type: 'array',
                    minItems: 1,
                    maxItems: 16,
                    items: {
                      type: 'object',
                      required: ['group', 'kind'],
                      properties: {
                        group: { type: 'string', maxLength: 253 },
                        kind: { type: 'string', minLength: 1, maxLength: 63 },
                        name: { type: 'string', minLength: 1, maxLength: 253 },
                      },
                    },
                  },
                },
              },
            },
          },
        },
      },
    ],
  },
});

describe('provisioner: a dataSourceRef in another namespace (real control plane, CrossNamespaceVolumeDataSource)', function () {
  let controlPlane: ControlPlane;
  let kc: k8s.KubeConfig;
  let gated: GatedApiServer | undefined;
  let client: HttpKubeClient;
  let source: string;
  let target: string;
  const drivers: TestDriver[] = [];
  const provisioners: RunningProvisioner[] = [];
  // gate off / gate on: one provisioner, driver and class each
  const offClass = `xns-off-${process.pid}`;
  const onClass = `xns-on-${process.pid}`;
  let offDriver: TestDriver;
  let onDriver: TestDriver;
  let crdPreexisting = false;

  before(async function () {
    controlPlane = await sharedControlPlane();
    kc = kubeConfigFor(controlPlane);
    await installSnapshotCrds(controlPlane);
    const existing = await kubectl(controlPlane, [
      'get',
      'crd',
      CRD_NAME,
      '--ignore-not-found',
      '-o',
      `jsonpath={.metadata.labels.snapback\\.dev/test-owner}`,
    ]);
    if (existing === 'provisioner-cross-namespace') {
      await kubectl(controlPlane, ['delete', 'crd', CRD_NAME, '--wait=true']);
    } else if (existing !== '' || (await crdExists())) {
      crdPreexisting = true;
    }
    gated = await startGatedApiServer(controlPlane, 'CrossNamespaceVolumeDataSource=true');
    client = new HttpKubeClient(gated.kubeConfig, { qps: 100, burst: 100 });
    source = await createTestNamespace(kc, 'prov-xns-src');
    target = await createTestNamespace(kc, 'prov-xns-dst');

    offDriver = new TestDriver(`xns-off-${process.pid}.test.snapback.dev`);
    onDriver = new TestDriver(`xns-on-${process.pid}.test.snapback.dev`);
    for (const driver of [offDriver, onDriver]) {
      drivers.push(driver);
      await driver.start();
    }
    await client.create(StorageClasses, storageClassFor(offClass, offDriver.name));
    await client.create(StorageClasses, storageClassFor(onClass, onDriver.name));
    await seedReadySnapshot(onDriver.name);
    provisioners.push(runProvisioner({ client, driver: offDriver, timeoutMs: 10_000 }));
    provisioners.push(
      runProvisioner({
        client,
        driver: onDriver,
        timeoutMs: 10_000,
        crossNamespaceVolumeDataSource: true,
      }),
    );
  });

  after(async function () {
    for (const provisioner of provisioners) await provisioner.stop();
    if (client) {
      for (const pv of (await client.list<V1PersistentVolume & KubeObject>(PersistentVolumes))
        .items) {
        if (![offClass, onClass].includes(pv.spec?.storageClassName ?? '')) continue;
        await client
          .patch(PersistentVolumes, pv.metadata!.name!, undefined, 'merge', {
            metadata: { finalizers: null },
          })
          .catch(() => undefined);
        await client.delete(PersistentVolumes, pv.metadata!.name!).catch(() => undefined);
      }
      for (const name of [offClass, onClass])
        await client.delete(StorageClasses, name).catch(() => undefined);
      if (source) {
        await client
          .patch(VolumeSnapshots, 'snap', source, 'merge', { metadata: { finalizers: null } })
          .catch(() => undefined);
      }
      await client
        .delete(VolumeSnapshotContents, `xns-content-${process.pid}`)
        .catch(() => undefined);
    }
    for (const namespace of [source, target]) {
      if (namespace) await deleteTestNamespace(kc, namespace);
    }
    if (controlPlane && !crdPreexisting) {
      await kubectl(controlPlane, ['delete', 'crd', CRD_NAME, '--ignore-not-found']);
    }
    await gated?.stop();
    for (const driver of drivers) await driver.stop();
  });

  async function crdExists(): Promise<boolean> {
    const names = await kubectl(controlPlane, ['get', 'crd', '-o', 'name']);
    return names.split('\n').includes(`customresourcedefinition.apiextensions.k8s.io/${CRD_NAME}`);
  }

  /** VolumeSnapshot `snap` in the source namespace, ready, bound to a content of `driver`. */
  async function seedReadySnapshot(driver: string): Promise<void> {
    const snapshot = await client.create<VolumeSnapshot>(VolumeSnapshots, {
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshot',
      metadata: { name: 'snap', namespace: source },
      spec: { source: { volumeSnapshotContentName: `xns-content-${process.pid}` } },
    });
    await client.create<VolumeSnapshotContent>(VolumeSnapshotContents, {
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshotContent',
      metadata: { name: `xns-content-${process.pid}` },
      spec: {
        driver,
        deletionPolicy: 'Retain',
        volumeSnapshotRef: { name: 'snap', namespace: source, uid: snapshot.metadata.uid },
        source: { snapshotHandle: 'backend-snap-1' },
      },
    });
    await client.patch(
      VolumeSnapshotContents,
      `xns-content-${process.pid}`,
      undefined,
      'merge',
      { status: { snapshotHandle: 'backend-snap-1', readyToUse: true, restoreSize: 2 ** 30 } },
      { subresource: 'status' },
    );
    await client.patch(
      VolumeSnapshots,
      'snap',
      source,
      'merge',
      {
        status: {
          boundVolumeSnapshotContentName: `xns-content-${process.pid}`,
          readyToUse: true,
          restoreSize: '1Gi',
        },
      },
      { subresource: 'status' },
    );
  }

  /** A PVC in the target namespace restoring `snap` of the source namespace. */
  async function crossNamespaceClaim(
    name: string,
    className: string,
  ): Promise<V1PersistentVolumeClaim & KubeObject> {
    const created = await client.create<V1PersistentVolumeClaim & KubeObject>(
      PersistentVolumeClaims,
      claimOf(name, target, className, {
        dataSourceRef: {
          apiGroup: 'snapshot.storage.k8s.io',
          kind: 'VolumeSnapshot',
          name: 'snap',
          namespace: source,
        },
      }),
    );
    // the gated API server keeps the namespace; without the gate it would be dropped
    expect((created.spec?.dataSourceRef as { namespace?: string } | undefined)?.namespace).to.equal(
      source,
    );
    return created;
  }

  async function warning(claim: string, pattern: RegExp): Promise<CoreEvent> {
    let last: string[] = [];
    return waitFor(
      async () => {
        const events = (await client.list<CoreEvent>(Events, { namespace: target })).items.filter(
          (e) => e.involvedObject?.name === claim && e.reason === 'ProvisioningFailed',
        );
        last = events.map((e) => e.message ?? '');
        return events.find((e) => e.type === 'Warning' && pattern.test(e.message ?? ''));
      },
      TIMEOUT,
      `a ProvisioningFailed Warning on PVC ${claim} matching ${pattern}`,
      () => JSON.stringify(last),
    );
  }

  async function bound(claim: string): Promise<V1PersistentVolumeClaim & KubeObject> {
    let last: unknown;
    return waitFor(
      async () => {
        const pvc = await client.get<V1PersistentVolumeClaim & KubeObject>(
          PersistentVolumeClaims,
          claim,
          target,
        );
        last = pvc?.status;
        return pvc?.status?.phase === 'Bound' ? pvc : undefined;
      },
      TIMEOUT,
      `PVC ${claim} to be Bound`,
      async () => {
        const events = (await client.list<CoreEvent>(Events, { namespace: target })).items
          .filter((e) => e.involvedObject?.name === claim)
          .map((e) => `${e.type} ${e.reason} ${e.message}`);
        return JSON.stringify({ status: last, events });
      },
    );
  }

  const grant = (to: Array<{ group: string; kind: string; name?: string }>): ReferenceGrant => ({
    apiVersion: 'gateway.networking.k8s.io/v1beta1',
    kind: 'ReferenceGrant',
    metadata: { name: 'restores-from-target', namespace: source },
    spec: { from: [{ group: '', kind: 'PersistentVolumeClaim', namespace: target }], to },
  });

  it('gate off: refused with an Event naming the gate, the driver never asked', async function () {
    await crossNamespaceClaim('gate-off', offClass);
    const event = await warning('gate-off', /CrossNamespaceVolumeDataSource feature is disabled/);
    expect(event.message).to.include('--feature-gates=CrossNamespaceVolumeDataSource=true');
    expect(offDriver.creates).to.deep.equal([]);
  });

  it('gate on, ReferenceGrant CRD not installed: refused, saying to install it', async function () {
    if (crdPreexisting) this.skip();
    await crossNamespaceClaim('no-crd', onClass);
    await warning(
      'no-crd',
      /does not serve referencegrants\.gateway\.networking\.k8s\.io\/v1beta1/,
    );
    expect(onDriver.creates.map((r) => r.name)).to.deep.equal([]);
  });

  it('gate on: refused without a ReferenceGrant, provisioned once one allows it', async function () {
    if (!crdPreexisting) {
      await kubectl(controlPlane, ['apply', '-f', '-'], referenceGrantCrd);
      await kubectl(controlPlane, [
        'wait',
        '--for=condition=Established',
        '--timeout=60s',
        `crd/${CRD_NAME}`,
      ]);
    }
    // a grant for another snapshot does not count
    await waitFor(
      () =>
        client.create(ReferenceGrants, grant([{ ...snapshotKind, name: 'other' }])).then(
          () => true,
          () => false,
        ),
      TIMEOUT,
      'the ReferenceGrant kind to be served',
    );
    const denied = await crossNamespaceClaim('denied', onClass);
    const event = await warning(
      'denied',
      new RegExp(
        `accessing ${source}/snap of VolumeSnapshot dataSource from ${target}/denied isn't allowed`,
      ),
    );
    expect(event.message).to.include(`create a ReferenceGrant in namespace ${source}`);
    expect(onDriver.creates.filter((r) => r.name === `pvc-${denied.metadata!.uid}`)).to.deep.equal(
      [],
    );

    await client.replace(ReferenceGrants, {
      ...grant([snapshotKind]),
      metadata: {
        ...grant([]).metadata,
        resourceVersion: (
          await client.get<ReferenceGrant>(ReferenceGrants, 'restores-from-target', source)
        )?.metadata?.resourceVersion,
      },
    });
    const allowed = await bound('denied');
    const call = onDriver.creates.find((r) => r.name === `pvc-${allowed.metadata!.uid}`);
    expect(call?.volume_content_source?.snapshot?.snapshot_id).to.equal('backend-snap-1');
    if (!crdPreexisting) {
      // the PVC refused for want of the CRD is provisioned too, now that the grant exists
      await bound('no-crd');
    }
  });
});

const snapshotKind = { group: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot' };
