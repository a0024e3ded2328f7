import { expect } from 'chai';
import * as k8s from '@kubernetes/client-node';
import type { ControlPlane } from '../../support/control-plane.js';
import {
  createTestNamespace,
  deleteTestNamespace,
  httpStatusOf,
  kubeConfigFor,
  kubectl,
  sharedControlPlane,
} from '../../support/cluster.js';
import { alicloudValues, chartDir, helm, helmOk, parseManifests, templateArgs } from './helm.js';

const SNAPSHOT_CRDS = [
  'volumesnapshotclasses.snapshot.storage.k8s.io',
  'volumesnapshotcontents.snapshot.storage.k8s.io',
  'volumesnapshots.snapshot.storage.k8s.io',
  'volumegroupsnapshotclasses.groupsnapshot.storage.k8s.io',
  'volumegroupsnapshotcontents.groupsnapshot.storage.k8s.io',
  'volumegroupsnapshots.groupsnapshot.storage.k8s.io',
];
const OUR_CRDS = ['backuppolicies.snapback.dev', 'restorejobs.snapback.dev'];

interface CrdOwner {
  exists: boolean;
  uid?: string;
  release?: string;
  namespace?: string;
}

/**
 * The chart installed into the shared control plane. No kubelet or scheduler runs there, so
 * pods never start: the checks are on the objects and on what the ServiceAccount may do.
 */
describe('Helm chart charts/snapback: install into a real API server', function () {
  let controlPlane: ControlPlane;
  let kc: k8s.KubeConfig;
  let namespace: string;
  let release: string;
  let serviceAccount: string;
  const before_: Record<string, CrdOwner> = {};

  const crdOwner = async (name: string): Promise<CrdOwner> => {
    const api = kc.makeApiClient(k8s.ApiextensionsV1Api);
    try {
      const crd = await api.readCustomResourceDefinition({ name });
      const annotations = crd.metadata?.annotations ?? {};
      return {
        exists: true,
        uid: crd.metadata?.uid,
        release: annotations['meta.helm.sh/release-name'],
        namespace: annotations['meta.helm.sh/release-namespace'],
      };
    } catch (error) {
      if ((error as { code?: number }).code === 404) return { exists: false };
      throw error;
    }
  };

  const helmArgs = () => [
    '--kubeconfig',
    controlPlane.kubeconfig,
    '--namespace',
    namespace,
    // class names are cluster-wide: keep them apart from other suites' objects
    '--set',
    `storageClass.name=${release}-local`,
    '--set',
    `volumeSnapshotClass.name=${release}-local`,
  ];

  const canI = async (args: string[]): Promise<boolean> => {
    const result = await kubectl(controlPlane, [
      'auth',
      'can-i',
      ...args,
      `--as=system:serviceaccount:${namespace}:${serviceAccount}`,
    ]).catch((error: Error) => error.message);
    return result.trim() === 'yes';
  };

  before(async function () {
    controlPlane = await sharedControlPlane();
    kc = kubeConfigFor(controlPlane);
    namespace = await createTestNamespace(kc, 'chart');
    release = `snapback-${process.pid}`;
    serviceAccount = release;
    for (const name of SNAPSHOT_CRDS) before_[name] = await crdOwner(name);
    // Other suites may have applied crds/ with kubectl already; taking the snapback.dev CRDs
    // over is what a user who did the same would do.
    await helmOk(['install', release, chartDir, '--take-ownership', ...helmArgs()]);
  });

  after(async function () {
    if (!kc) return;
    await helm(['uninstall', release, '--kubeconfig', controlPlane.kubeconfig, '-n', namespace]);
    if (namespace) await deleteTestNamespace(kc, namespace);
  });

  it('creates the workloads, RBAC, driver registration and classes', async function () {
    const names = (
      await kubectl(controlPlane, [
        'get',
        'deployment,daemonset,serviceaccount,role,rolebinding,service,poddisruptionbudget',
        '-n',
        namespace,
        '-l',
        `app.kubernetes.io/instance=${release}`,
        '-o',
        'name',
      ])
    )
      .trim()
      .split('\n')
      .sort();
    expect(names).to.deep.equal(
      [
        `deployment.apps/${release}-controller`,
        `daemonset.apps/${release}-node`,
        `serviceaccount/${release}`,
        `serviceaccount/${release}-node`,
        `role.rbac.authorization.k8s.io/${release}-leader-election`,
        `rolebinding.rbac.authorization.k8s.io/${release}-leader-election`,
        `service/${release}-metrics`,
        `poddisruptionbudget.policy/${release}-controller`,
      ].sort(),
    );
    const clusterWide = (
      await kubectl(controlPlane, [
        'get',
        `clusterrole/${release}-controller`,
        `clusterrolebinding/${release}-controller`,
        'csidriver/local.snapback.dev',
        `storageclass/${release}-local`,
        `volumesnapshotclass/${release}-local`,
        '-o',
        'name',
      ])
    )
      .trim()
      .split('\n');
    expect(clusterWide).to.have.length(5);
    const replicas = await kubectl(controlPlane, [
      'get',
      `deployment/${release}-controller`,
      '-n',
      namespace,
      '-o',
      'jsonpath={.spec.replicas}',
    ]);
    expect(replicas).to.equal('2');
  });

  it('leaves every CRD established, ours owned by the release', async function () {
    for (const name of [...OUR_CRDS, ...SNAPSHOT_CRDS]) {
      const established = await kubectl(controlPlane, [
        'get',
        'crd',
        name,
        '-o',
        'jsonpath={.status.conditions[?(@.type=="Established")].status}',
      ]);
      expect(established, name).to.equal('True');
    }
    for (const name of OUR_CRDS) {
      expect((await crdOwner(name)).release, name).to.equal(release);
    }
  });

  it('creates the snapshot CRDs the cluster lacked and leaves existing ones untouched', async function () {
    for (const name of SNAPSHOT_CRDS) {
      const now = await crdOwner(name);
      expect(now.exists, name).to.equal(true);
      if (before_[name]!.exists)
        expect(now.uid, `${name} was replaced`).to.equal(before_[name]!.uid);
      // crds/ is Helm's, not the release's: uninstalling never deletes snapshots cluster-wide
      expect(now.release, name).to.equal(undefined);
    }
    const manifest = parseManifests(
      await helmOk([
        'get',
        'manifest',
        release,
        '--kubeconfig',
        controlPlane.kubeconfig,
        '-n',
        namespace,
      ]),
    );
    expect(
      manifest.filter((m) => m.kind === 'CustomResourceDefinition').map((m) => m.metadata.name),
    ).to.have.members(OUR_CRDS);
  });

  it('upgrades in place, the VolumeSnapshotClass included', async function () {
    const uid = async () =>
      kubectl(controlPlane, [
        'get',
        'volumesnapshotclass',
        `${release}-local`,
        '-o',
        'jsonpath={.metadata.uid}',
      ]);
    const before = await uid();
    await helmOk([
      'upgrade',
      release,
      chartDir,
      ...helmArgs(),
      '--set',
      'volumeSnapshotClass.forceDelete=true',
    ]);
    expect(await uid()).to.equal(before);
    const forceDelete = await kubectl(controlPlane, [
      'get',
      'volumesnapshotclass',
      `${release}-local`,
      '-o',
      'jsonpath={.parameters.forceDelete}',
    ]);
    expect(forceDelete).to.equal('true');
    for (const name of SNAPSHOT_CRDS) expect((await crdOwner(name)).exists, name).to.equal(true);
  });

  it('lets the ServiceAccount do what the controllers do, in any namespace', async function () {
    const allowed = [
      ['create', 'volumesnapshots.snapshot.storage.k8s.io', '-n', 'default'],
      ['delete', 'volumesnapshots.snapshot.storage.k8s.io', '-n', 'default'],
      ['patch', 'volumesnapshots.snapshot.storage.k8s.io', '--subresource=status', '-n', 'default'],
      ['create', 'volumesnapshotcontents.snapshot.storage.k8s.io'],
      ['create', 'volumesnapshotclasses.snapshot.storage.k8s.io'],
      ['patch', 'backuppolicies.snapback.dev', '--subresource=status', '-n', 'default'],
      ['patch', 'restorejobs.snapback.dev', '--subresource=status', '-n', 'default'],
      ['get', 'backuppolicies.snapback.dev', '-n', 'default'],
      ['list', 'restorejobs.snapback.dev', '--all-namespaces'],
      ['create', 'persistentvolumeclaims', '-n', 'default'],
      ['create', 'persistentvolumes'],
      ['list', 'csinodes.storage.k8s.io'],
      ['create', 'events', '-n', 'default'],
      ['update', `leases.coordination.k8s.io/${release}-controller`, '-n', namespace],
      ['create', 'leases.coordination.k8s.io', '-n', namespace],
    ];
    for (const args of allowed) expect(await canI(args), args.join(' ')).to.equal(true);
  });

  it('denies the ServiceAccount everything else: Secrets, Pods, deleting PVCs, foreign Leases', async function () {
    const denied = [
      ['get', 'secrets', '-n', 'kube-system'],
      ['get', 'secrets', '-n', namespace],
      ['list', 'secrets', '--all-namespaces'],
      ['create', 'pods', '-n', 'default'],
      ['delete', 'persistentvolumeclaims', '-n', 'default'],
      // the controllers only read their own kinds and patch their status
      ['update', 'backuppolicies.snapback.dev', '-n', 'default'],
      ['patch', 'restorejobs.snapback.dev', '-n', 'default'],
      ['update', 'backuppolicies.snapback.dev', '--subresource=status', '-n', 'default'],
      ['update', 'restorejobs.snapback.dev', '--subresource=finalizers', '-n', 'default'],
      ['update', 'leases.coordination.k8s.io/kube-controller-manager', '-n', 'kube-system'],
      ['create', 'leases.coordination.k8s.io', '-n', 'default'],
      ['update', `leases.coordination.k8s.io/another-lease`, '-n', namespace],
      ['delete', 'customresourcedefinitions.apiextensions.k8s.io'],
      ['create', 'clusterrolebindings.rbac.authorization.k8s.io'],
    ];
    for (const args of denied) expect(await canI(args), args.join(' ')).to.equal(false);
  });

  it('serves requests made with the ServiceAccount’s own token by exactly those rules', async function () {
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const tokenRequest = await core.createNamespacedServiceAccountToken({
      name: serviceAccount,
      namespace,
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const cluster = kc.getCurrentCluster()!;
    const asOperator = new k8s.KubeConfig();
    asOperator.loadFromOptions({
      clusters: [{ name: 'c', server: cluster.server, caData: cluster.caData }],
      users: [{ name: 'snapback', token: tokenRequest.status!.token }],
      contexts: [{ name: 'c', cluster: 'c', user: 'snapback' }],
      currentContext: 'c',
    });
    const custom = asOperator.makeApiClient(k8s.CustomObjectsApi);
    const operatorCore = asOperator.makeApiClient(k8s.CoreV1Api);
    expect(
      await httpStatusOf(() =>
        custom.listClusterCustomObject({
          group: 'snapshot.storage.k8s.io',
          version: 'v1',
          plural: 'volumesnapshots',
        }),
      ),
    ).to.equal(200);
    expect(
      await httpStatusOf(() => operatorCore.listPersistentVolumeClaimForAllNamespaces()),
    ).to.equal(200);
    expect(
      await httpStatusOf(() => operatorCore.listNamespacedSecret({ namespace: 'kube-system' })),
    ).to.equal(403);
    expect(await httpStatusOf(() => operatorCore.listNamespacedPod({ namespace }))).to.equal(403);
  });

  it('accepts the ACK values on the API server (server-side dry run)', async function () {
    const rendered = await helmOk([
      'template',
      `${release}-ack`,
      chartDir,
      '--namespace',
      namespace,
      '-f',
      alicloudValues,
      '--set',
      `volumeSnapshotClass.name=${release}-ack`,
      ...templateArgs(),
    ]);
    const out = await kubectl(
      controlPlane,
      ['apply', '--dry-run=server', '-n', namespace, '-f', '-'],
      rendered,
    );
    expect(out).to.contain(`deployment.apps/${release}-ack-controller created (server dry run)`);
    expect(out).to.contain(
      `volumesnapshotclass.snapshot.storage.k8s.io/${release}-ack created (server dry run)`,
    );
  });

  it('accepts the NetworkPolicies on the API server (server-side dry run)', async function () {
    for (const backend of [[], ['-f', alicloudValues]]) {
      const rendered = await helmOk([
        'template',
        `${release}-np`,
        chartDir,
        '--namespace',
        namespace,
        ...backend,
        '--show-only',
        'templates/networkpolicy.yaml',
        '--set',
        'networkPolicy.enabled=true',
        '--set-json',
        'networkPolicy.metrics.from=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]',
        '--set-json',
        'networkPolicy.apiServer.to=[{"ipBlock":{"cidr":"10.0.0.1/32"}}]',
        ...templateArgs(),
      ]);
      const out = await kubectl(
        controlPlane,
        ['apply', '--dry-run=server', '-n', namespace, '-f', '-'],
        rendered,
      );
      expect(out, backend.join(' ')).to.contain(
        `networkpolicy.networking.k8s.io/${release}-np-controller created (server dry run)`,
      );
    }
  });

  it('keeps the CRDs, and so every BackupPolicy, after helm uninstall', async function () {
    await helmOk(['uninstall', release, '--kubeconfig', controlPlane.kubeconfig, '-n', namespace]);
    const deployments = await kubectl(controlPlane, [
      'get',
      'deployments',
      '-n',
      namespace,
      '-o',
      'name',
    ]);
    expect(deployments.trim()).to.equal('');
    for (const name of [...OUR_CRDS, ...SNAPSHOT_CRDS]) {
      expect((await crdOwner(name)).exists, name).to.equal(true);
    }
    expect(
      await kubectl(controlPlane, [
        'get',
        'volumesnapshotclass',
        `${release}-local`,
        '--ignore-not-found',
        '-o',
        'name',
      ]),
    ).to.equal('');
    expect(
      await kubectl(controlPlane, [
        'get',
        'clusterrole',
        `${release}-controller`,
        '--ignore-not-found',
        '-o',
        'name',
      ]),
    ).to.equal('');
  });
});
