import { expect } from 'chai';
import type * as k8s from '@kubernetes/client-node';
import type { V1PersistentVolume, V1PersistentVolumeClaim } from '@kubernetes/client-node';
import {
  HttpKubeClient,
  PersistentVolumeClaims,
  PersistentVolumes,
  StorageClasses,
  type KubeObject,
} from '../../../src/kube/index.js';
import type { ControlPlane } from '../../support/control-plane.js';
import {
  createTestNamespace,
  deleteTestNamespace,
  kubeConfigFor,
  sharedControlPlane,
} from '../../support/cluster.js';
import { waitFor } from '../../support/processes.js';
import {
  TestDriver,
  claimOf,
  runProvisioner,
  storageClassFor,
  type RunningProvisioner,
} from './support.js';

const TIMEOUT = 60_000;
/** The provisioner's CSI deadline; the driver's slow calls take three times as long. */
const DEADLINE_MS = 500;

describe('provisioner: a CreateVolume that outlives its deadline (real control plane, slow CSI driver)', function () {
  let controlPlane: ControlPlane;
  let kc: k8s.KubeConfig;
  let client: HttpKubeClient;
  let namespace: string;
  let driver: TestDriver;
  let provisioner: RunningProvisioner | undefined;
  const className = `inflight-${process.pid}`;

  before(async function () {
    controlPlane = await sharedControlPlane();
    kc = kubeConfigFor(controlPlane);
    client = new HttpKubeClient(kc, { qps: 100, burst: 100 });
    namespace = await createTestNamespace(kc, 'prov-inflight');
    driver = new TestDriver(`inflight-${process.pid}.test.snapback.dev`);
    await driver.start();
    await client.create(StorageClasses, storageClassFor(className, driver.name));
    provisioner = runProvisioner({ client, driver, timeoutMs: DEADLINE_MS });
  });

  after(async function () {
    await provisioner?.stop();
    if (client) {
      for (const pv of (await client.list<V1PersistentVolume & KubeObject>(PersistentVolumes))
        .items) {
        if (pv.spec?.storageClassName !== className) continue;
        await client
          .patch(PersistentVolumes, pv.metadata!.name!, undefined, 'merge', {
            metadata: { finalizers: null },
          })
          .catch(() => undefined);
        await client.delete(PersistentVolumes, pv.metadata!.name!).catch(() => undefined);
      }
      await client.delete(StorageClasses, className).catch(() => undefined);
    }
    if (namespace) await deleteTestNamespace(kc, namespace);
    await driver?.stop();
  });

  const claim = (name: string) =>
    client.get<V1PersistentVolumeClaim & KubeObject>(PersistentVolumeClaims, name, namespace);

  it('repeats the timed-out call and binds the PVC when the driver answers', async function () {
    driver.delays = [3 * DEADLINE_MS];
    const created = await client.create<V1PersistentVolumeClaim & KubeObject>(
      PersistentVolumeClaims,
      claimOf('kept', namespace, className),
    );
    const pvName = `pvc-${created.metadata!.uid}`;
    const bound = await waitFor(
      async () => {
        const current = await claim('kept');
        return current?.status?.phase === 'Bound' ? current : undefined;
      },
      TIMEOUT,
      'the PVC to be Bound',
      async () => JSON.stringify({ pvc: (await claim('kept'))?.status, creates: driver.creates }),
    );
    expect(bound.spec?.volumeName).to.equal(pvName);
    const calls = driver.creates.filter((r) => r.name === pvName);
    expect(calls.length).to.be.at.least(2);
    expect(driver.deletes).to.not.include(`vol-${pvName}`);
    expect(driver.volumes.has(`vol-${pvName}`)).to.equal(true);
    const pv = await client.get<V1PersistentVolume & KubeObject>(PersistentVolumes, pvName);
    expect(pv?.spec?.csi?.volumeHandle).to.equal(`vol-${pvName}`);
  });

  it('finishes the call of a PVC deleted meanwhile and deletes the volume it made', async function () {
    // the first two calls outlive the deadline; the PVC goes while the first is running
    driver.delays = [3 * DEADLINE_MS, 3 * DEADLINE_MS];
    const before = driver.creates.length;
    const created = await client.create<V1PersistentVolumeClaim & KubeObject>(
      PersistentVolumeClaims,
      claimOf('dropped', namespace, className),
    );
    const pvName = `pvc-${created.metadata!.uid}`;
    await waitFor(
      () => driver.creates.length > before,
      TIMEOUT,
      'the first CreateVolume of the PVC',
    );
    await client.delete(PersistentVolumeClaims, 'dropped', namespace);
    await waitFor(
      async () => (await claim('dropped')) === undefined,
      TIMEOUT,
      'the PVC to be gone',
    );
    await waitFor(
      () => driver.deletes.includes(`vol-${pvName}`),
      TIMEOUT,
      `DeleteVolume of vol-${pvName}`,
      () => JSON.stringify({ creates: driver.creates.map((r) => r.name), deletes: driver.deletes }),
    );
    const calls = driver.creates.filter((r) => r.name === pvName);
    expect(calls.length, 'CreateVolume repeated until it answered').to.be.at.least(3);
    expect(driver.volumes.has(`vol-${pvName}`), 'volume left on the backend').to.equal(false);
    expect(await client.get(PersistentVolumes, pvName)).to.equal(undefined);
  });
});
