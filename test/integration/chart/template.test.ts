import { expect } from 'chai';
import {
  alicloudValues,
  chartDir,
  findOne,
  helm,
  kinds,
  renderChart,
  templateArgs,
  type KubeManifest,
} from './helm.js';
import { kubeVersion } from '../../support/tools.js';

interface Container {
  name: string;
  image?: string;
  imagePullPolicy?: string;
  args?: string[];
  env?: {
    name: string;
    value?: string;
    valueFrom?: { secretKeyRef?: { name: string; key: string } };
  }[];
  ports?: { name: string; containerPort: number }[];
  livenessProbe?: { httpGet?: { path: string; port: string } };
  readinessProbe?: { httpGet?: { path: string; port: string } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, unknown>;
  volumeMounts?: {
    name: string;
    mountPath: string;
    mountPropagation?: string;
    readOnly?: boolean;
  }[];
}

interface PodSpec {
  serviceAccountName?: string;
  securityContext?: Record<string, unknown>;
  containers: Container[];
  volumes?: {
    name: string;
    emptyDir?: object;
    hostPath?: { path: string };
    secret?: Record<string, unknown>;
  }[];
  affinity?: Record<string, unknown>;
}

const podSpec = (workload: KubeManifest): PodSpec =>
  (workload as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;

const container = (spec: PodSpec, name: string): Container => {
  const found = spec.containers.find((c) => c.name === name);
  if (!found)
    throw new Error(`no container ${name} among ${spec.containers.map((c) => c.name).join(', ')}`);
  return found;
};

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

const rulesOf = (role: KubeManifest): Rule[] => (role as unknown as { rules: Rule[] }).rules;

/** The verbs a role grants on group/resource (empty when none). */
function verbsOn(role: KubeManifest, group: string, resource: string): string[] {
  return rulesOf(role)
    .filter((r) => r.apiGroups.includes(group) && r.resources.includes(resource))
    .flatMap((r) => r.verbs)
    .sort();
}

describe('Helm chart charts/snapback: lint, template, schema', function () {
  it('passes `helm lint --strict` with the default values and with the ACK values', async function () {
    const defaults = await helm(['lint', '--strict', chartDir]);
    expect(defaults.code, defaults.stdout + defaults.stderr).to.equal(0);
    const ack = await helm(['lint', '--strict', chartDir, '-f', alicloudValues]);
    expect(ack.code, ack.stdout + ack.stderr).to.equal(0);
  });

  describe('default values (local backend)', function () {
    let manifests: KubeManifest[];

    before(async function () {
      manifests = await renderChart();
    });

    it('renders the expected objects', function () {
      expect(kinds(manifests)).to.deep.equal(
        [
          'CSIDriver/local.snapback.dev',
          'ClusterRole/snapback-controller',
          'ClusterRoleBinding/snapback-controller',
          'CustomResourceDefinition/backuppolicies.snapback.dev',
          'CustomResourceDefinition/restorejobs.snapback.dev',
          'DaemonSet/snapback-node',
          'Deployment/snapback-controller',
          'PodDisruptionBudget/snapback-controller',
          'Role/snapback-leader-election',
          'RoleBinding/snapback-leader-election',
          'Service/snapback-metrics',
          'ServiceAccount/snapback',
          'ServiceAccount/snapback-node',
          'StorageClass/snapback-local',
          'VolumeSnapshotClass/snapback-local',
        ].sort(),
      );
    });

    it('keeps the snapback.dev CRDs on uninstall', function () {
      const crds = manifests.filter((m) => m.kind === 'CustomResourceDefinition');
      expect(crds.map((m) => m.metadata.name).sort()).to.deep.equal([
        'backuppolicies.snapback.dev',
        'restorejobs.snapback.dev',
      ]);
      for (const crd of crds) {
        expect(crd.metadata.annotations?.['helm.sh/resource-policy'], crd.metadata.name).to.equal(
          'keep',
        );
        expect(crd.metadata.labels?.['app.kubernetes.io/instance'], crd.metadata.name).to.equal(
          'snapback',
        );
      }
    });

    it('runs a 2-replica, leader-elected, probed, restricted controller Deployment', function () {
      const deployment = findOne(manifests, 'Deployment', 'snapback-controller');
      expect((deployment as unknown as { spec: { replicas: number } }).spec.replicas).to.equal(2);
      const spec = podSpec(deployment);
      expect(spec.serviceAccountName).to.equal('snapback');
      expect(spec.securityContext).to.deep.include({ runAsNonRoot: true, runAsUser: 1000 });
      expect(spec.securityContext?.seccompProfile).to.deep.equal({ type: 'RuntimeDefault' });
      const controller = container(spec, 'controller');
      expect(controller.args).to.include.members([
        'controller',
        '--leader-election=true',
        '--leader-election-namespace=$(POD_NAMESPACE)',
        '--leader-election-name=snapback-controller',
        '--http-endpoint=:8080',
        '--snapshot-controller=true',
        '--csi-snapshotter=true',
        '--csi-provisioner=true',
        '--csi-address=unix:///csi/csi.sock',
      ]);
      expect(controller.livenessProbe?.httpGet).to.deep.equal({ path: '/healthz', port: 'http' });
      expect(controller.readinessProbe?.httpGet).to.deep.equal({ path: '/readyz', port: 'http' });
      expect(controller.ports).to.deep.include({
        name: 'http',
        containerPort: 8080,
        protocol: 'TCP',
      });
      expect(controller.securityContext).to.deep.equal({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      });
      expect(controller.resources?.requests).to.have.keys('cpu', 'memory');
      expect(controller.resources?.limits).to.have.key('memory');
      // the local driver's socket, on the node, next to a driver pod
      const socket = spec.volumes?.find((v) => v.name === 'socket-dir');
      expect(socket?.hostPath?.path).to.equal('/var/lib/kubelet/plugins/local.snapback.dev');
      expect(JSON.stringify(spec.affinity)).to.contain('"app.kubernetes.io/component":"node"');
    });

    it('runs the local driver as a DaemonSet registered with kubelet', function () {
      const daemonSet = findOne(manifests, 'DaemonSet', 'snapback-node');
      const spec = podSpec(daemonSet);
      const driver = container(spec, 'driver');
      expect(driver.args).to.include.members([
        'driver',
        '--backend=local',
        '--endpoint=unix:///csi/csi.sock',
        '--node-id=$(NODE_NAME)',
        '--root=/var/lib/snapback/local',
        '--kubelet-dir=/var/lib/kubelet',
        '--http-endpoint=:8081',
      ]);
      expect(driver.securityContext?.privileged).to.equal(true);
      // the socket's group is the controller's, so the non-root controller may connect
      expect(driver.securityContext?.runAsGroup).to.equal(1000);
      expect(driver.volumeMounts).to.deep.include({
        name: 'pods-dir',
        mountPath: '/var/lib/kubelet/pods',
        mountPropagation: 'Bidirectional',
      });
      expect(spec.volumes?.find((v) => v.name === 'registration-dir')?.hostPath?.path).to.equal(
        '/var/lib/kubelet/plugins_registry',
      );
      const csiDriver = findOne(manifests, 'CSIDriver') as unknown as {
        spec: { attachRequired: boolean };
      };
      expect(csiDriver.spec.attachRequired).to.equal(false);
    });

    it("registers the plugin with kubelet by `snapback registrar` from the chart's own image", function () {
      const spec = podSpec(findOne(manifests, 'DaemonSet', 'snapback-node'));
      const registrar = container(spec, 'node-driver-registrar');
      expect(registrar.image).to.equal(container(spec, 'driver').image);
      expect(registrar.image).to.equal('ghcr.io/snapback-dev/snapback:0.1.0');
      expect(registrar.imagePullPolicy).to.equal('IfNotPresent');
      expect(registrar.args).to.deep.equal([
        'registrar',
        '--csi-address=/csi/csi.sock',
        '--kubelet-registration-path=/var/lib/kubelet/plugins/local.snapback.dev/csi.sock',
        '--http-endpoint=:9809',
      ]);
      expect(registrar.env).to.deep.include({ name: 'SNAPBACK_LOG_LEVEL', value: 'info' });
      expect(registrar.livenessProbe?.httpGet).to.deep.equal({
        path: '/healthz',
        port: 'http-registrar',
      });
      expect(registrar.ports).to.deep.include({
        name: 'http-registrar',
        containerPort: 9809,
        protocol: 'TCP',
      });
      // root, to create its socket in the root-owned plugins_registry, but nothing more
      expect(registrar.securityContext).to.deep.equal({
        runAsUser: 0,
        runAsGroup: 0,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      });
      expect(registrar.resources?.limits?.memory).to.equal('192Mi');
      expect(registrar.volumeMounts).to.deep.equal([
        { name: 'socket-dir', mountPath: '/csi' },
        { name: 'registration-dir', mountPath: '/registration' },
      ]);
    });

    it('creates the example classes for the local driver, forceDelete explicit', function () {
      const storageClass = findOne(manifests, 'StorageClass') as unknown as {
        provisioner: string;
        volumeBindingMode: string;
      };
      expect(storageClass.provisioner).to.equal('local.snapback.dev');
      expect(storageClass.volumeBindingMode).to.equal('Immediate');
      const snapshotClass = findOne(manifests, 'VolumeSnapshotClass');
      expect(snapshotClass).to.deep.include({
        driver: 'local.snapback.dev',
        deletionPolicy: 'Delete',
      });
      expect(
        (snapshotClass as unknown as { parameters: Record<string, string> }).parameters,
      ).to.deep.equal({ forceDelete: 'false' });
      expect(snapshotClass.metadata.annotations?.['helm.sh/hook']).to.equal(undefined);
    });

    it('grants the controllers what they do and no access to Secrets', function () {
      const role = findOne(manifests, 'ClusterRole', 'snapback-controller');
      // the policy layer reads its own kinds and merge-patches their status, nothing more
      for (const kind of ['backuppolicies', 'restorejobs']) {
        expect(verbsOn(role, 'snapback.dev', kind), kind).to.deep.equal(['get', 'list', 'watch']);
        expect(verbsOn(role, 'snapback.dev', `${kind}/status`), kind).to.deep.equal(['patch']);
        // no ownerReference names them, so blockOwnerDeletion needs no update on finalizers
        expect(verbsOn(role, 'snapback.dev', `${kind}/finalizers`), kind).to.deep.equal([]);
      }
      expect(
        rulesOf(role).filter((r) => r.apiGroups.includes('snapback.dev')),
        'snapback.dev rules',
      ).to.have.length(2);
      // the group paths of the snapshot controller (groups, their contents and classes), and
      // Group policies: they create groups, prune them whole and own a class per template
      expect(verbsOn(role, 'groupsnapshot.storage.k8s.io', 'volumegroupsnapshots')).to.deep.equal([
        'create',
        'delete',
        'get',
        'list',
        'patch',
        'update',
        'watch',
      ]);
      expect(
        verbsOn(role, 'groupsnapshot.storage.k8s.io', 'volumegroupsnapshotcontents'),
      ).to.deep.equal(['create', 'delete', 'get', 'list', 'patch', 'update', 'watch']);
      expect(
        verbsOn(role, 'groupsnapshot.storage.k8s.io', 'volumegroupsnapshotclasses'),
      ).to.deep.equal(['create', 'delete', 'get', 'list', 'patch', 'update', 'watch']);
      expect(verbsOn(role, 'snapshot.storage.k8s.io', 'volumesnapshots')).to.deep.equal([
        'create',
        'delete',
        'get',
        'list',
        'patch',
        'update',
        'watch',
      ]);
      expect(
        verbsOn(role, 'snapshot.storage.k8s.io', 'volumesnapshotcontents/status'),
      ).to.deep.equal(['patch', 'update']);
      expect(verbsOn(role, '', 'persistentvolumes')).to.deep.equal([
        'create',
        'delete',
        'get',
        'list',
        'patch',
        'update',
        'watch',
      ]);
      expect(verbsOn(role, '', 'persistentvolumeclaims')).not.to.include('delete');
      expect(verbsOn(role, '', 'events')).to.deep.equal(['create', 'patch']);
      expect(verbsOn(role, 'storage.k8s.io', 'csinodes')).to.deep.equal(['get', 'list', 'watch']);
      // CrossNamespaceVolumeDataSource is off: no ReferenceGrant access, no gate flag
      expect(verbsOn(role, 'gateway.networking.k8s.io', 'referencegrants')).to.deep.equal([]);
      expect(
        container(podSpec(findOne(manifests, 'Deployment', 'snapback-controller')), 'controller')
          .args,
      ).not.to.include('--feature-gates=CrossNamespaceVolumeDataSource=true');
      for (const forbidden of ['secrets', 'pods', 'configmaps', '*']) {
        expect(
          rulesOf(role).filter((r) => r.resources.includes(forbidden)),
          `ClusterRole grants ${forbidden}`,
        ).to.deep.equal([]);
      }
      // upstream's components are detected by their Leases, anywhere: list, and nothing more
      expect(verbsOn(role, 'coordination.k8s.io', 'leases')).to.deep.equal(['list']);
      expect(
        container(podSpec(findOne(manifests, 'Deployment', 'snapback-controller')), 'controller')
          .args,
      ).to.include('--defer-to-upstream=true');
      expect(rulesOf(role).flatMap((r) => r.verbs)).not.to.include('*');

      const leases = findOne(manifests, 'Role', 'snapback-leader-election');
      expect(leases.metadata.namespace).to.equal('snapback-system');
      expect(rulesOf(leases)).to.deep.equal([
        { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
        {
          apiGroups: ['coordination.k8s.io'],
          resources: ['leases'],
          resourceNames: ['snapback-controller'],
          verbs: ['get', 'update', 'patch'],
        },
      ]);
    });

    it('controller.deferToUpstream=false: no Lease list, and the parts act whatever upstream runs', async function () {
      const off = await renderChart(['--set', 'controller.deferToUpstream=false']);
      const role = findOne(off, 'ClusterRole', 'snapback-controller');
      expect(verbsOn(role, 'coordination.k8s.io', 'leases')).to.deep.equal([]);
      expect(
        container(podSpec(findOne(off, 'Deployment', 'snapback-controller')), 'controller').args,
      ).to.include('--defer-to-upstream=false');
    });
  });

  describe('ACK values (alicloud backend)', function () {
    let manifests: KubeManifest[];

    before(async function () {
      manifests = await renderChart(['-f', alicloudValues]);
    });

    it('pairs the ECS driver with the controller in one pod over an emptyDir socket', function () {
      const spec = podSpec(findOne(manifests, 'Deployment', 'snapback-controller'));
      expect(spec.containers.map((c) => c.name)).to.deep.equal(['controller', 'driver']);
      const driver = container(spec, 'driver');
      expect(driver.args).to.include.members([
        'driver',
        '--backend=alicloud',
        '--endpoint=unix:///csi/csi.sock',
        '--region=cn-hangzhou',
        '--zone=cn-hangzhou-h',
        '--services=controller',
        '--http-endpoint=:8081',
        '--ecs-protocol=https',
        '--ecs-network=public',
      ]);
      expect(container(spec, 'controller').args).to.include.members([
        '--csi-snapshotter=true',
        '--csi-provisioner=false',
        '--csi-address=unix:///csi/csi.sock',
      ]);
      expect(spec.volumes?.find((v) => v.name === 'socket-dir')).to.deep.equal({
        name: 'socket-dir',
        emptyDir: {},
      });
      for (const c of spec.containers) {
        expect(c.volumeMounts, c.name).to.deep.include({ name: 'socket-dir', mountPath: '/csi' });
        expect(c.securityContext?.readOnlyRootFilesystem, c.name).to.equal(true);
      }
      // the access key reaches the driver container only, as files kubelet mounts
      expect(driver.args).to.include.members([
        '--credentials=secret-dir',
        '--credentials-dir=/etc/snapback/alicloud',
      ]);
      expect(driver.volumeMounts).to.deep.include({
        name: 'alicloud-credentials',
        mountPath: '/etc/snapback/alicloud',
        readOnly: true,
      });
      expect(spec.volumes?.find((v) => v.name === 'alicloud-credentials')).to.deep.equal({
        name: 'alicloud-credentials',
        secret: {
          secretName: 'snapback-alicloud-credentials',
          defaultMode: 0o440, // 288
          items: [
            { key: 'access-key-id', path: 'access-key-id' },
            { key: 'access-key-secret', path: 'access-key-secret' },
          ],
        },
      });
      expect(JSON.stringify(container(spec, 'controller'))).not.to.contain('alicloud-credentials');
      expect(spec.affinity).to.equal(undefined);
    });

    it('installs no node plugin, no CSIDriver and no StorageClass (ACK has its own)', function () {
      const present = kinds(manifests);
      expect(present.filter((k) => /^(DaemonSet|CSIDriver|StorageClass)\//.test(k))).to.deep.equal(
        [],
      );
      expect(present).to.include('ServiceAccount/snapback');
      expect(present).not.to.include('ServiceAccount/snapback-node');
    });

    it('creates the recipe’s class: diskplugin.csi.alibabacloud.com with forceDelete "true"', function () {
      const snapshotClass = findOne(manifests, 'VolumeSnapshotClass', 'snapback-alicloud');
      expect(snapshotClass).to.deep.include({ driver: 'diskplugin.csi.alibabacloud.com' });
      expect(
        (snapshotClass as unknown as { parameters: Record<string, string> }).parameters,
      ).to.deep.equal({ forceDelete: 'true' });
    });

    it('grants no PV creation or node reads when the provisioner is off', function () {
      const role = findOne(manifests, 'ClusterRole', 'snapback-controller');
      expect(verbsOn(role, '', 'persistentvolumes')).to.deep.equal(['get', 'list', 'watch']);
      expect(verbsOn(role, '', 'nodes')).to.deep.equal([]);
    });

    it('scrapes the driver container’s metrics too', function () {
      const service = findOne(manifests, 'Service') as unknown as {
        spec: { ports: { name: string }[] };
      };
      expect(service.spec.ports.map((p) => p.name)).to.deep.equal(['http', 'http-driver']);
    });
  });

  describe('health and metrics endpoints', function () {
    interface Service {
      spec: { ports: { name: string; port: number; targetPort: string }[] };
    }
    interface ServiceMonitor {
      spec: { endpoints: { port: string; path: string }[] };
    }

    /** Each container's --http-endpoint port must be the port its probes and ports name. */
    function checkBindings(manifests: KubeManifest[]): Record<string, number> {
      const bound: Record<string, number> = {};
      for (const workload of manifests.filter((m) =>
        ['Deployment', 'DaemonSet'].includes(m.kind),
      )) {
        for (const c of podSpec(workload).containers) {
          const where = `${workload.kind}/${workload.metadata.name} container ${c.name}`;
          const flag = c.args?.find((a) => a.startsWith('--http-endpoint='));
          expect(flag, `${where} has no --http-endpoint`).to.be.a('string');
          // ":port": every address of the pod, so kubelet and the Service reach it
          const match = /^--http-endpoint=:(\d+)$/.exec(flag!);
          expect(match, `${where}: ${flag}`).not.to.equal(null);
          const port = Number(match![1]);
          const probePorts = [c.livenessProbe, c.readinessProbe]
            .map((p) => p?.httpGet?.port)
            .filter((p): p is string => p !== undefined);
          expect(probePorts, `${where} is not probed`).not.to.deep.equal([]);
          for (const name of probePorts) {
            expect(
              c.ports?.find((p) => p.name === name)?.containerPort,
              `${where}: probe port ${name}`,
            ).to.equal(port);
          }
          bound[`${workload.kind}/${c.name}`] = port;
        }
      }
      const service = manifests.find((m) => m.kind === 'Service') as
        (KubeManifest & Service) | undefined;
      const controllerPorts = podSpec(findOne(manifests, 'Deployment')).containers.flatMap(
        (c) => c.ports ?? [],
      );
      for (const p of service?.spec.ports ?? []) {
        const target = controllerPorts.find((cp) => cp.name === p.targetPort);
        expect(target, `Service port ${p.name} targets ${p.targetPort}`).not.to.equal(undefined);
        expect(p.port, `Service port ${p.name}`).to.equal(target!.containerPort);
      }
      const monitor = manifests.find((m) => m.kind === 'ServiceMonitor') as
        (KubeManifest & ServiceMonitor) | undefined;
      for (const e of monitor?.spec.endpoints ?? []) {
        expect(
          service?.spec.ports.map((p) => p.name),
          `ServiceMonitor port ${e.port}`,
        ).to.include(e.port);
      }
      return bound;
    }

    it('bind, with the default values, where the ports, probes and Service say', async function () {
      expect(checkBindings(await renderChart())).to.deep.equal({
        'Deployment/controller': 8080,
        'DaemonSet/driver': 8081,
        'DaemonSet/node-driver-registrar': 9809,
      });
      expect(
        checkBindings(
          await renderChart(['-f', alicloudValues, '--set', 'metrics.serviceMonitor.enabled=true']),
        ),
      ).to.deep.equal({ 'Deployment/controller': 8080, 'Deployment/driver': 8081 });
    });

    it('follow the port values, the registrar’s included', async function () {
      const ports = [
        '--set',
        'controller.healthPort=9090',
        '--set',
        'driver.healthPort=9091',
        '--set',
        'driver.local.registrar.healthPort=9092',
        '--set',
        'metrics.serviceMonitor.enabled=true',
      ];
      expect(checkBindings(await renderChart(ports))).to.deep.equal({
        'Deployment/controller': 9090,
        'DaemonSet/driver': 9091,
        'DaemonSet/node-driver-registrar': 9092,
      });
      expect(checkBindings(await renderChart(['-f', alicloudValues, ...ports]))).to.deep.equal({
        'Deployment/controller': 9090,
        'Deployment/driver': 9091,
      });
    });

    it('refuse two containers of one pod on the same port, naming both values', async function () {
      const clash = async (args: string[]) => {
        const result = await helm(['template', 'snapback', chartDir, ...templateArgs(), ...args]);
        expect(result.code, `helm template ${args.join(' ')} was accepted`).not.to.equal(0);
        return result.stderr;
      };
      expect(await clash(['--set', 'driver.local.registrar.healthPort=8081'])).to.contain(
        'driver.healthPort and driver.local.registrar.healthPort are both 8081',
      );
      expect(await clash(['-f', alicloudValues, '--set', 'driver.healthPort=8080'])).to.contain(
        'controller.healthPort and driver.healthPort are both 8080',
      );
    });
  });

  describe('networkPolicy', function () {
    interface PolicyPort {
      port: number;
      protocol: string;
    }
    interface PolicyRule {
      from?: Record<string, unknown>[];
      to?: Record<string, unknown>[];
      ports?: PolicyPort[];
    }
    interface NetworkPolicySpec {
      podSelector: { matchLabels: Record<string, string> };
      policyTypes: string[];
      ingress: PolicyRule[];
      egress: PolicyRule[];
    }
    const specOf = (manifests: KubeManifest[], name: string): NetworkPolicySpec =>
      (findOne(manifests, 'NetworkPolicy', name) as unknown as { spec: NetworkPolicySpec }).spec;
    const prometheus = {
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } },
      podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } },
    };
    const fromPrometheus = [
      '--set',
      'networkPolicy.enabled=true',
      '--set-json',
      `networkPolicy.metrics.from=${JSON.stringify([prometheus])}`,
    ];
    const tcp = (...ports: number[]) => ports.map((port) => ({ port, protocol: 'TCP' }));

    it('is off by default', async function () {
      expect(
        kinds(await renderChart()).filter((k) => k.startsWith('NetworkPolicy/')),
      ).to.deep.equal([]);
    });

    it('admits only the named peers, to the health and metrics ports of each pod', async function () {
      const manifests = await renderChart([
        ...fromPrometheus,
        '--set',
        'controller.healthPort=9090',
      ]);
      const controller = specOf(manifests, 'snapback-controller');
      expect(controller.podSelector.matchLabels).to.deep.equal({
        'app.kubernetes.io/name': 'snapback',
        'app.kubernetes.io/instance': 'snapback',
        'app.kubernetes.io/component': 'controller',
      });
      expect(controller.policyTypes).to.deep.equal(['Ingress', 'Egress']);
      expect(controller.ingress).to.deep.equal([{ from: [prometheus], ports: tcp(9090) }]);
      // the port the pod's probes use is the one admitted
      const probed = container(podSpec(findOne(manifests, 'Deployment')), 'controller');
      expect(probed.ports?.find((p) => p.name === 'http')?.containerPort).to.equal(9090);

      const node = specOf(manifests, 'snapback-node');
      expect(node.podSelector.matchLabels['app.kubernetes.io/component']).to.equal('node');
      expect(node.ingress).to.deep.equal([{ from: [prometheus], ports: tcp(8081, 9809) }]);
      // no token, unix sockets only: nothing leaves the node plugin pods
      expect(node.policyTypes).to.deep.equal(['Ingress', 'Egress']);
      expect(node.egress).to.deep.equal([]);

      // without peers no one but kubelet (the pod's own node, always admitted) gets in
      const closed = await renderChart(['--set', 'networkPolicy.enabled=true']);
      expect(specOf(closed, 'snapback-controller').ingress).to.deep.equal([]);
      expect(specOf(closed, 'snapback-node').ingress).to.deep.equal([]);
    });

    it('lets the controller reach the API server and DNS only, narrowed by the values', async function () {
      const open = specOf(await renderChart(fromPrometheus), 'snapback-controller');
      expect(open.egress).to.deep.equal([
        { ports: tcp(443, 6443) },
        {
          ports: [
            { port: 53, protocol: 'UDP' },
            { port: 53, protocol: 'TCP' },
          ],
        },
      ]);
      const apiServer = [{ ipBlock: { cidr: '10.0.0.1/32' } }];
      const dns = [
        { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } } },
      ];
      const proxy = { to: [{ ipBlock: { cidr: '10.1.0.0/24' } }], ports: tcp(3128) };
      const narrowed = specOf(
        await renderChart([
          ...fromPrometheus,
          '--set-json',
          `networkPolicy.apiServer.to=${JSON.stringify(apiServer)}`,
          '--set-json',
          'networkPolicy.apiServer.ports=[6443]',
          '--set-json',
          `networkPolicy.dns.to=${JSON.stringify(dns)}`,
          '--set-json',
          `networkPolicy.extraEgress=${JSON.stringify([proxy])}`,
        ]),
        'snapback-controller',
      );
      expect(narrowed.egress).to.deep.equal([
        { ports: tcp(6443), to: apiServer },
        {
          ports: [
            { port: 53, protocol: 'UDP' },
            { port: 53, protocol: 'TCP' },
          ],
          to: dns,
        },
        proxy,
      ]);
    });

    it('with the alicloud backend admits the driver’s port and lets it reach ECS', async function () {
      const manifests = await renderChart([
        '-f',
        alicloudValues,
        ...fromPrometheus,
        '--set',
        'driver.alicloud.endpoint=ecs-vpc.cn-hangzhou.aliyuncs.com:8443',
      ]);
      expect(kinds(manifests).filter((k) => k.startsWith('NetworkPolicy/'))).to.deep.equal([
        'NetworkPolicy/snapback-controller',
      ]);
      const controller = specOf(manifests, 'snapback-controller');
      expect(controller.ingress).to.deep.equal([{ from: [prometheus], ports: tcp(8080, 8081) }]);
      expect(controller.egress).to.deep.include({ ports: tcp(443, 8443) });
      expect(controller.egress).to.deep.include({
        to: [{ ipBlock: { cidr: '100.100.100.200/32' } }],
        ports: tcp(80),
      });
    });

    it('is checked by values.schema.json', async function () {
      const result = await helm([
        'template',
        'snapback',
        chartDir,
        ...templateArgs(),
        '--set',
        'networkPolicy.metrics.form=x',
      ]);
      expect(result.code).not.to.equal(0);
      expect(result.stderr).to.match(/form/);
    });
  });

  describe('options', function () {
    it('ships the snapshot.storage.k8s.io CRDs in crds/, for Helm to create only where absent', async function () {
      const withCrds = await renderChart(['--include-crds']);
      const snapshotCrds = withCrds.filter(
        (m) =>
          m.kind === 'CustomResourceDefinition' &&
          m.metadata.name.endsWith('.snapshot.storage.k8s.io'),
      );
      expect(snapshotCrds.map((m) => m.metadata.name).sort()).to.deep.equal([
        'volumesnapshotclasses.snapshot.storage.k8s.io',
        'volumesnapshotcontents.snapshot.storage.k8s.io',
        'volumesnapshots.snapshot.storage.k8s.io',
      ]);
      for (const crd of snapshotCrds) {
        expect(crd.metadata.annotations?.['api-approved.kubernetes.io'], crd.metadata.name).to.be.a(
          'string',
        );
      }
    });

    it('with backend none runs only the policy layer: no driver, no CSI flags, no classes', async function () {
      const manifests = await renderChart([
        '--set',
        'driver.backend=none',
        '--set',
        'controller.snapshotController=false',
      ]);
      const spec = podSpec(findOne(manifests, 'Deployment'));
      expect(spec.containers.map((c) => c.name)).to.deep.equal(['controller']);
      expect(container(spec, 'controller').args).to.include.members([
        '--snapshot-controller=false',
        '--csi-snapshotter=false',
        '--csi-provisioner=false',
      ]);
      expect(JSON.stringify(spec)).not.to.contain('csi.sock');
      const present = kinds(manifests);
      expect(
        present.filter((k) => /^(DaemonSet|CSIDriver|StorageClass|VolumeSnapshotClass)\//.test(k)),
      ).to.deep.equal([]);
      const role = findOne(manifests, 'ClusterRole');
      expect(verbsOn(role, 'snapshot.storage.k8s.io', 'volumesnapshotcontents')).to.deep.equal([
        'get',
        'list',
        'watch',
      ]);
      expect(verbsOn(role, 'snapshot.storage.k8s.io', 'volumesnapshots/status')).to.deep.equal([]);
      // without the embedded snapshot controller only Group policies use VolumeGroupSnapshots:
      // they create and prune them, and never write their status or finalizers
      expect(verbsOn(role, 'groupsnapshot.storage.k8s.io', 'volumegroupsnapshots')).to.deep.equal([
        'create',
        'delete',
        'get',
        'list',
        'watch',
      ]);
      // a group restore reads its group's content (how many members it has)
      expect(
        verbsOn(role, 'groupsnapshot.storage.k8s.io', 'volumegroupsnapshotcontents'),
      ).to.deep.equal(['get', 'list', 'watch']);
    });

    it('with crossNamespaceVolumeDataSource, turns the gate on and lets the provisioner list ReferenceGrants', async function () {
      const manifests = await renderChart([
        '--set',
        'controller.crossNamespaceVolumeDataSource=true',
      ]);
      const role = findOne(manifests, 'ClusterRole', 'snapback-controller');
      expect(verbsOn(role, 'gateway.networking.k8s.io', 'referencegrants')).to.deep.equal(['list']);
      expect(
        container(podSpec(findOne(manifests, 'Deployment', 'snapback-controller')), 'controller')
          .args,
      ).to.include('--feature-gates=CrossNamespaceVolumeDataSource=true');

      // without the embedded provisioner there is nothing to turn on
      const off = await renderChart([
        '--set',
        'controller.crossNamespaceVolumeDataSource=true',
        '--set',
        'controller.provisioner=false',
      ]);
      expect(
        verbsOn(
          findOne(off, 'ClusterRole', 'snapback-controller'),
          'gateway.networking.k8s.io',
          'referencegrants',
        ),
      ).to.deep.equal([]);
      expect(
        container(podSpec(findOne(off, 'Deployment', 'snapback-controller')), 'controller').args,
      ).not.to.include('--feature-gates=CrossNamespaceVolumeDataSource=true');
    });

    it('grants pods/exec and passes --hooks=true only with hooks.enabled', async function () {
      const controllerArgs = (manifests: KubeManifest[]) =>
        container(podSpec(findOne(manifests, 'Deployment', 'snapback-controller')), 'controller')
          .args ?? [];
      const off = await renderChart([]);
      expect(controllerArgs(off)).to.include('--hooks=false');
      const offRole = findOne(off, 'ClusterRole', 'snapback-controller');
      expect(verbsOn(offRole, '', 'pods/exec')).to.deep.equal([]);
      expect(verbsOn(offRole, '', 'pods')).to.deep.equal([]);

      const on = await renderChart(['--set', 'hooks.enabled=true']);
      expect(controllerArgs(on)).to.include('--hooks=true');
      const role = findOne(on, 'ClusterRole', 'snapback-controller');
      // a WebSocket exec is authorized as get and, since Kubernetes 1.35, also as create
      expect(verbsOn(role, '', 'pods/exec')).to.deep.equal(['create', 'get']);
      // pods are listed live when a run starts: no watch, no cache of every pod
      expect(verbsOn(role, '', 'pods')).to.deep.equal(['get', 'list']);
      for (const forbidden of ['secrets', 'pods/attach', 'pods/portforward']) {
        expect(verbsOn(role, '', forbidden), forbidden).to.deep.equal([]);
      }
    });

    it('grants drill Jobs, scratch PVC deletion and Event reads, and passes --verify-image, only with verify.enabled', async function () {
      const controller = (manifests: KubeManifest[]) =>
        container(podSpec(findOne(manifests, 'Deployment', 'snapback-controller')), 'controller');
      const off = await renderChart([]);
      expect(controller(off).args ?? []).to.not.include('--verify=true');
      const offRole = findOne(off, 'ClusterRole', 'snapback-controller');
      expect(verbsOn(offRole, 'batch', 'jobs')).to.deep.equal([]);
      expect(verbsOn(offRole, '', 'events')).to.not.include('list');

      const on = await renderChart(['--set', 'verify.enabled=true']);
      const args = controller(on).args ?? [];
      expect(args).to.include('--verify=true');
      // the drill Job runs the controller's own image
      expect(args).to.include(`--verify-image=${controller(on).image}`);
      const role = findOne(on, 'ClusterRole', 'snapback-controller');
      expect(verbsOn(role, 'batch', 'jobs')).to.deep.equal(['create', 'delete', 'get', 'list']);
      expect(verbsOn(role, '', 'events')).to.include('list');
      expect(verbsOn(role, '', 'pods')).to.deep.equal(['get', 'list']);
      expect(verbsOn(role, '', 'persistentvolumeclaims')).to.include('delete');
      expect(verbsOn(role, 'apps', 'statefulsets'), 'no Swap grants with drills').to.deep.equal([]);
      expect(verbsOn(role, '', 'pods/exec'), 'no exec with drills').to.deep.equal([]);
    });

    it('grants StatefulSet scaling and PVC deletion, and passes --restore-swap=true, only with restore.swap.enabled', async function () {
      const controllerArgs = (manifests: KubeManifest[]) =>
        container(podSpec(findOne(manifests, 'Deployment', 'snapback-controller')), 'controller')
          .args ?? [];
      const off = await renderChart([]);
      expect(controllerArgs(off)).to.include('--restore-swap=false');
      const offRole = findOne(off, 'ClusterRole', 'snapback-controller');
      expect(verbsOn(offRole, 'apps', 'statefulsets')).to.deep.equal([]);
      expect(verbsOn(offRole, 'apps', 'statefulsets/scale')).to.deep.equal([]);
      expect(verbsOn(offRole, '', 'persistentvolumeclaims')).to.not.include('delete');

      const on = await renderChart(['--set', 'restore.swap.enabled=true']);
      expect(controllerArgs(on)).to.include('--restore-swap=true');
      const role = findOne(on, 'ClusterRole', 'snapback-controller');
      expect(verbsOn(role, 'apps', 'statefulsets')).to.include.members(['get', 'watch', 'patch']);
      // scaled through spec.replicas: no scale subresource
      expect(verbsOn(role, 'apps', 'statefulsets/scale')).to.deep.equal([]);
      // the swap finalizer on the RestoreJob
      expect(verbsOn(role, 'snapback.dev', 'restorejobs')).to.include('patch');
      expect(verbsOn(offRole, 'snapback.dev', 'restorejobs')).to.not.include('patch');
      expect(verbsOn(role, '', 'persistentvolumeclaims')).to.include('delete');
      expect(verbsOn(role, '', 'persistentvolumes')).to.include('patch');
      expect(verbsOn(role, 'batch', 'jobs'), 'no drill grants with Swap').to.deep.equal([]);
    });

    it('grants snapshotter Secrets by name, one Role per namespace', async function () {
      const manifests = await renderChart([
        '--set',
        'rbac.snapshotterSecrets[0].namespace=kube-system',
        '--set',
        'rbac.snapshotterSecrets[0].names={a,b}',
        '--set',
        'rbac.snapshotterSecrets[1].namespace=kube-system',
        '--set',
        'rbac.snapshotterSecrets[1].names={b,c}',
      ]);
      const role = findOne(manifests, 'Role', 'snapback-snapshotter-secrets');
      expect(role.metadata.namespace).to.equal('kube-system');
      expect(rulesOf(role)).to.deep.equal([
        { apiGroups: [''], resources: ['secrets'], resourceNames: ['a', 'b', 'c'], verbs: ['get'] },
      ]);
      expect(
        findOne(manifests, 'RoleBinding', 'snapback-snapshotter-secrets').metadata.namespace,
      ).to.equal('kube-system');
    });

    it('adds a ServiceMonitor and alerting rules when asked', async function () {
      const manifests = await renderChart([
        '--set',
        'metrics.serviceMonitor.enabled=true',
        '--set',
        'metrics.prometheusRule.enabled=true',
        '--set',
        'metrics.prometheusRule.policyStaleAfter=2d',
      ]);
      findOne(manifests, 'ServiceMonitor', 'snapback');
      const rule = JSON.stringify(findOne(manifests, 'PrometheusRule', 'snapback'));
      expect(rule).to.contain('snapback_policy_last_success_timestamp_seconds) > 172800');
      expect(rule).to.contain('{{ $labels.namespace }}/{{ $labels.policy }}');
      expect(rule).to.contain('snapback_ecs_api_requests_total{outcome=\\"throttled\\"}');
      // no successful drill for verifyStaleAfter (default 8d = 691200 s)
      expect(rule).to.contain('SnapbackRestoreDrillStale');
      expect(rule).to.contain(
        'snapback_policy_last_verification_success_timestamp_seconds) > 691200',
      );
    });

    it('runs the upstream node-driver-registrar instead when its image is named', async function () {
      const upstream = 'registry.k8s.io/sig-storage/csi-node-driver-registrar';
      const registrarOf = async (args: string[]) =>
        container(
          podSpec(findOne(await renderChart(args), 'DaemonSet', 'snapback-node')),
          'node-driver-registrar',
        );
      const registrar = await registrarOf([
        '--set',
        `driver.local.registrar.image.repository=${upstream}`,
        '--set',
        'driver.local.registrar.image.pullPolicy=Always',
        '--set',
        'image.pullPolicy=Never',
      ]);
      expect(registrar.image).to.equal(`${upstream}:v2.13.0`);
      expect(registrar.imagePullPolicy).to.equal('Always');
      // the same flags, without snapback's subcommand; no snapback environment
      expect(registrar.args).to.deep.equal([
        '--csi-address=/csi/csi.sock',
        '--kubelet-registration-path=/var/lib/kubelet/plugins/local.snapback.dev/csi.sock',
        '--http-endpoint=:9809',
      ]);
      expect(registrar.env).to.equal(undefined);
      expect(registrar.securityContext?.capabilities).to.deep.equal({ drop: ['ALL'] });

      const pinned = await registrarOf([
        '--set',
        `driver.local.registrar.image.repository=${upstream}@sha256:${'0'.repeat(64)}`,
        '--set',
        'driver.local.registrar.image.tag=',
      ]);
      expect(pinned.image).to.equal(`${upstream}@sha256:${'0'.repeat(64)}`);

      // with no repository, its tag and pullPolicy do not leak onto the snapback image
      const own = await registrarOf([
        '--set',
        'driver.local.registrar.image.tag=v9',
        '--set',
        'driver.local.registrar.image.pullPolicy=Always',
        '--set',
        'image.tag=1.2.3',
      ]);
      expect(own.image).to.equal('ghcr.io/snapback-dev/snapback:1.2.3');
      expect(own.imagePullPolicy).to.equal('IfNotPresent');
      expect(own.args?.[0]).to.equal('registrar');
    });

    it('claims Kubernetes 1.29 or later: CEL rules GA, and its quantity library in new CRDs', async function () {
      const on = async (version: string) =>
        helm(['template', 'snapback', chartDir, '--kube-version', version]);
      for (const refused of ['v1.25.16', 'v1.28.15']) {
        const result = await on(refused);
        expect(result.code, `rendered for ${refused}`).not.to.equal(0);
        expect(result.stderr).to.contain('chart requires kubeVersion: >=1.29.0-0');
      }
      for (const accepted of ['v1.29.0', kubeVersion()]) {
        const result = await on(accepted);
        expect(result.code, `${accepted}: ${result.stderr}`).to.equal(0);
      }
    });

    it('drops the PodDisruptionBudget for a single replica', async function () {
      const manifests = await renderChart(['--set', 'controller.replicas=1']);
      expect(kinds(manifests).filter((k) => k.startsWith('PodDisruptionBudget/'))).to.deep.equal(
        [],
      );
    });
  });

  describe('values.schema.json', function () {
    const rejected = async (args: string[]) => {
      const result = await helm(['template', 'snapback', chartDir, ...templateArgs(), ...args]);
      expect(result.code, `helm template ${args.join(' ')} was accepted`).not.to.equal(0);
      return result.stderr;
    };

    const cases: { what: string; args: string[]; message: RegExp[] }[] = [
      {
        what: 'an unknown backend',
        args: ['--set', 'driver.backend=aws'],
        message: [/driver\/backend|driver\.backend/, /local/, /alicloud/],
      },
      {
        what: 'zero controller replicas',
        args: ['--set', 'controller.replicas=0'],
        message: [/controller\/replicas|controller\.replicas/, /minimum|1/],
      },
      {
        what: 'a misspelt key',
        args: ['--set', 'controler.replicas=2'],
        message: [/controler/],
      },
      {
        what: 'the alicloud backend without a region',
        args: ['--set', 'driver.backend=alicloud', '--set', 'driver.alicloud.zone=cn-hangzhou-h'],
        message: [/region/],
      },
      {
        what: 'the alicloud backend without a zone',
        args: ['--set', 'driver.backend=alicloud', '--set', 'driver.alicloud.region=cn-hangzhou'],
        message: [/zone/],
      },
      {
        what: 'a non-boolean forceDelete',
        args: ['--set-string', 'volumeSnapshotClass.forceDelete=yes'],
        message: [/forceDelete/, /boolean/],
      },
      {
        what: 'a health port out of range',
        args: ['--set', 'controller.healthPort=70000'],
        message: [/healthPort/],
      },
      {
        what: 'a relative local root',
        args: ['--set', 'driver.local.root=var/lib/x'],
        message: [/driver\/local\/root|driver\.local\.root/],
      },
      {
        what: 'a non-boolean crossNamespaceVolumeDataSource',
        args: ['--set-string', 'controller.crossNamespaceVolumeDataSource=yes'],
        message: [/crossNamespaceVolumeDataSource/, /boolean/],
      },
      {
        what: 'a non-boolean hooks.enabled',
        args: ['--set-string', 'hooks.enabled=yes'],
        message: [/hooks\/enabled|hooks\.enabled/, /boolean/],
      },
      {
        what: 'a non-boolean verify.enabled',
        args: ['--set-string', 'verify.enabled=yes'],
        message: [/verify\/enabled|verify\.enabled/, /boolean/],
      },
      {
        what: 'a non-boolean restore.swap.enabled',
        args: ['--set-string', 'restore.swap.enabled=yes'],
        message: [/restore\/swap\/enabled|restore\.swap\.enabled/, /boolean/],
      },
      {
        what: 'a Secret grant without names',
        args: ['--set', 'rbac.snapshotterSecrets[0].namespace=kube-system'],
        message: [/names/],
      },
    ];

    it('rejects forceDelete smuggled in through parameters, pointing at its own key', async function () {
      const stderr = await rejected(['--set', 'volumeSnapshotClass.parameters.forceDelete=true']);
      expect(stderr).to.contain(
        'volumeSnapshotClass.parameters must not contain forceDelete: set volumeSnapshotClass.forceDelete',
      );
    });

    for (const { what, args, message } of cases) {
      it(`rejects ${what}, naming the value`, async function () {
        const stderr = await rejected(args);
        expect(stderr).to.contain('values don');
        for (const pattern of message) expect(stderr).to.match(pattern);
      });
    }
  });
});
