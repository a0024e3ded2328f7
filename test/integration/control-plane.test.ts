import { expect } from 'chai';
import * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../support/control-plane.js';
import {
  createTestNamespace,
  deleteTestNamespace,
  kubeConfigFor,
  kubectl,
  sharedControlPlane,
} from '../support/cluster.js';
import { waitFor } from '../support/processes.js';
import { kubeVersion } from '../support/tools.js';

/** The control plane that later tests stand on: each check here is a behaviour they rely on. */
describe('test control plane (etcd + kube-apiserver + kube-controller-manager)', function () {
  let controlPlane: ControlPlane;
  let kc: k8s.KubeConfig;
  let core: k8s.CoreV1Api;
  let namespace: string;

  before(async function () {
    controlPlane = await sharedControlPlane();
    kc = kubeConfigFor(controlPlane);
    core = kc.makeApiClient(k8s.CoreV1Api);
    namespace = await createTestNamespace(kc, 'cp');
  });

  after(async function () {
    if (kc && namespace) await deleteTestNamespace(kc, namespace);
  });

  it('reports the Kubernetes version tools/ built, not v0.0.0-master', async function () {
    const out = JSON.parse(await kubectl(controlPlane, ['version', '--output=json'])) as {
      serverVersion: { gitVersion: string };
      clientVersion: { gitVersion: string };
    };
    expect(out.serverVersion.gitVersion).to.equal(kubeVersion());
    expect(out.clientVersion.gitVersion).to.equal(kubeVersion());
  });

  it('binds a matching PV and PVC (persistentvolume-binder)', async function () {
    const pvName = `${namespace}-pv`;
    await core.createPersistentVolume({
      body: {
        metadata: { name: pvName },
        spec: {
          capacity: { storage: '1Gi' },
          accessModes: ['ReadWriteOnce'],
          storageClassName: 'manual',
          persistentVolumeReclaimPolicy: 'Retain',
          hostPath: { path: '/tmp/snapback-binder-test' },
        },
      },
    });
    try {
      await core.createNamespacedPersistentVolumeClaim({
        namespace,
        body: {
          metadata: { name: 'data' },
          spec: {
            accessModes: ['ReadWriteOnce'],
            storageClassName: 'manual',
            resources: { requests: { storage: '1Gi' } },
          },
        },
      });
      const phases = async () => {
        const pvc = await core.readNamespacedPersistentVolumeClaim({ name: 'data', namespace });
        const pv = await core.readPersistentVolume({ name: pvName });
        return { pvc: pvc.status?.phase, pv: pv.status?.phase, volumeName: pvc.spec?.volumeName };
      };
      await waitFor(
        async () => {
          const { pvc, pv } = await phases();
          return pvc === 'Bound' && pv === 'Bound';
        },
        60_000,
        'the PVC and PV to be Bound',
        async () => JSON.stringify(await phases()),
      );
      expect((await phases()).volumeName).to.equal(pvName);
    } finally {
      await core.deleteNamespacedPersistentVolumeClaim({ name: 'data', namespace });
      await core.deletePersistentVolume({ name: pvName });
    }
  });

  it('garbage-collects a ConfigMap whose owner is deleted', async function () {
    const owner = await core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: 'owner' }, data: { role: 'owner' } },
    });
    await core.createNamespacedConfigMap({
      namespace,
      body: {
        metadata: {
          name: 'owned',
          ownerReferences: [
            { apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata!.uid! },
          ],
        },
      },
    });
    await core.deleteNamespacedConfigMap({ name: 'owner', namespace });
    await waitFor(
      async () => {
        try {
          await core.readNamespacedConfigMap({ name: 'owned', namespace });
          return false;
        } catch (error) {
          return (error as { code?: number }).code === 404;
        }
      },
      60_000,
      'the garbage collector to delete ConfigMap "owned"',
    );
  });

  it('denies a ServiceAccount token without RBAC (403) and allows it with a Role (200)', async function () {
    const account = 'reader';
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: account } } });
    const request = await core.createNamespacedServiceAccountToken({
      name: account,
      namespace,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    });
    const token = request.status!.token;
    const cluster = kc.getCurrentCluster()!;
    const asAccount = new k8s.KubeConfig();
    asAccount.loadFromOptions({
      clusters: [{ name: 'c', server: cluster.server, caData: cluster.caData }],
      users: [{ name: account, token }],
      contexts: [{ name: 'c', cluster: 'c', user: account }],
      currentContext: 'c',
    });
    const accountCore = asAccount.makeApiClient(k8s.CoreV1Api);
    const listStatus = () =>
      accountCore.listNamespacedConfigMap({ namespace }).then(
        () => 200,
        (error: { code?: number }) => error.code ?? 0,
      );

    expect(await listStatus()).to.equal(403);

    const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace,
      body: {
        metadata: { name: 'configmap-reader' },
        rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list'] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: 'configmap-reader' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'configmap-reader' },
        subjects: [{ kind: 'ServiceAccount', name: account, namespace }],
      },
    });
    const status = await waitFor(
      async () => ((await listStatus()) === 200 ? 200 : 0),
      30_000,
      'the RoleBinding to take effect',
      async () => `HTTP ${await listStatus()}`,
    );
    expect(status).to.equal(200);
  });

  it('completes a namespace deletion (namespace controller)', async function () {
    const doomed = await createTestNamespace(kc, 'doomed');
    await core.createNamespacedConfigMap({ namespace: doomed, body: { metadata: { name: 'x' } } });
    await core.deleteNamespace({ name: doomed });
    await waitFor(
      async () => {
        try {
          await core.readNamespace({ name: doomed });
          return false;
        } catch (error) {
          return (error as { code?: number }).code === 404;
        }
      },
      90_000,
      `namespace ${doomed} to be gone`,
      async () =>
        JSON.stringify((await core.readNamespace({ name: doomed }).catch(() => undefined))?.status),
    );
  });
});
