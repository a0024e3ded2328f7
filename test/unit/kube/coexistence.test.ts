import { expect } from 'chai';
import {
  DeferToUpstream,
  heldLease,
  sanitizeLeaseName,
  upstreamLeaseNames,
  type CoexistenceStatus,
} from '../../../src/kube/coexistence.js';
import { ApiError } from '../../../src/kube/errors.js';
import type { Lease } from '../../../src/kube/leader-election.js';
import type { Runnable } from '../../../src/kube/manager.js';
import { Leases } from '../../../src/kube/resource.js';
import { eventually } from './eventually.js';
import { FakeKubeClient } from '../../support/fakes/kube-client.js';

const NOW = Date.parse('2026-01-01T12:00:00Z');

function lease(
  namespace: string,
  name: string,
  spec: Lease['spec'] = {
    holderIdentity: 'upstream-pod',
    leaseDurationSeconds: 15,
    renewTime: new Date(NOW - 5_000).toISOString(),
  },
): Lease {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name, namespace },
    spec,
  };
}

describe('co-existing with upstream', function () {
  describe("upstream's Lease names (csi-lib-utils sanitizeName)", function () {
    const cases: Array<[string, string, string]> = [
      [
        'local.snapback.dev',
        'external-snapshotter-leader-local-snapback-dev',
        'local-snapback-dev',
      ],
      [
        'diskplugin.csi.alibabacloud.com',
        'external-snapshotter-leader-diskplugin-csi-alibabacloud-com',
        'diskplugin-csi-alibabacloud-com',
      ],
      ['example.com/disk', 'external-snapshotter-leader-example-com-disk', 'example-com-disk'],
      // a name may not end with "-": sanitizeName appends an X
      ['odd_driver_', 'external-snapshotter-leader-odd-driver-X', 'odd-driver-X'],
      [
        'Hostpath.CSI.k8s.io',
        'external-snapshotter-leader-Hostpath-CSI-k8s-io',
        'Hostpath-CSI-k8s-io',
      ],
    ];
    for (const [driver, snapshotter, provisioner] of cases) {
      it(`driver ${driver}: csi-snapshotter ${snapshotter}, external-provisioner ${provisioner}`, function () {
        expect(upstreamLeaseNames.snapshotter(driver)).to.equal(snapshotter);
        expect(upstreamLeaseNames.provisioner(driver)).to.equal(provisioner);
      });
    }

    it('snapshot-controller holds snapshot-controller-leader, whatever the driver', function () {
      expect(upstreamLeaseNames.snapshotController()).to.equal('snapshot-controller-leader');
      expect(sanitizeLeaseName('snapshot-controller-leader')).to.equal(
        'snapshot-controller-leader',
      );
    });
  });

  describe('heldLease', function () {
    const at = (ms: number) => new Date(NOW + ms).toISOString();
    const cases: Array<[string, Lease['spec'], boolean]> = [
      [
        'renewed 5 s ago for 15 s',
        { holderIdentity: 'x', leaseDurationSeconds: 15, renewTime: at(-5_000) },
        true,
      ],
      [
        'renewed 16 s ago for 15 s',
        { holderIdentity: 'x', leaseDurationSeconds: 15, renewTime: at(-16_000) },
        false,
      ],
      [
        'released (no holder)',
        { holderIdentity: '', leaseDurationSeconds: 15, renewTime: at(-1_000) },
        false,
      ],
      [
        'only acquired, recently',
        { holderIdentity: 'x', leaseDurationSeconds: 15, acquireTime: at(-1_000) },
        true,
      ],
      ['no time at all', { holderIdentity: 'x', leaseDurationSeconds: 15 }, false],
      ['no duration', { holderIdentity: 'x', renewTime: at(-1) }, false],
      [
        'micro-second renew time',
        { holderIdentity: 'x', leaseDurationSeconds: 15, renewTime: '2026-01-01T11:59:59.123456Z' },
        true,
      ],
    ];
    for (const [title, spec, held] of cases) {
      it(`${held ? 'held' : 'free'}: ${title}`, function () {
        expect(heldLease(lease('ns', 'l', spec), NOW) !== undefined).to.equal(held);
      });
    }
  });

  describe('DeferToUpstream', function () {
    let api: FakeKubeClient;
    let clock: number;
    let gate: DeferToUpstream | undefined;
    let statuses: CoexistenceStatus[];
    let instances: Array<{ running: boolean }>;

    beforeEach(function () {
      api = new FakeKubeClient();
      clock = NOW;
      statuses = [];
      instances = [];
    });

    afterEach(async function () {
      await gate?.stop();
    });

    function start(namespaces?: string[]) {
      gate = new DeferToUpstream({
        part: 'csi-snapshotter',
        upstream: 'csi-snapshotter',
        leaseName: 'external-snapshotter-leader-local-snapback-dev',
        namespaces,
        client: api,
        periodMs: 20,
        now: () => clock,
        onStatus: (status) => statuses.push(status),
        create: (): Runnable => {
          const instance = { running: false };
          instances.push(instance);
          return {
            start: async () => {
              instance.running = true;
            },
            stop: async () => {
              instance.running = false;
            },
          };
        },
      });
      return gate.start();
    }

    const running = () => instances.filter((i) => i.running).length;
    const show = () =>
      `instances ${JSON.stringify(instances)} status ${JSON.stringify(gate?.status)}`;

    it('does not start while upstream holds its Lease in another namespace, and says so', async function () {
      api.seed(Leases, lease('kube-system', 'external-snapshotter-leader-local-snapback-dev'));
      await start();
      await eventually(() => gate!.status.state === 'deferring', show);
      expect(instances).to.have.length(0);
      expect(gate!.status.message).to.match(
        /csi-snapshotter runs in this cluster: Lease kube-system\/external-snapshotter-leader-local-snapback-dev is held by "upstream-pod" until 2026-01-01T12:00:10.000Z, so csi-snapshotter does not act \(stop csi-snapshotter, or run snapback with --csi-snapshotter=false\)/,
      );
    });

    it('starts once the Lease expires, and stops when upstream takes it again', async function () {
      api.seed(Leases, lease('kube-system', 'external-snapshotter-leader-local-snapback-dev'));
      await start();
      await eventually(() => gate!.status.state === 'deferring', show);
      clock = NOW + 10_001;
      await eventually(() => running() === 1, show);
      expect(gate!.status.state).to.equal('acting');

      const current = api.peek<Lease>(
        Leases,
        'external-snapshotter-leader-local-snapback-dev',
        'kube-system',
      )!;
      await api.replace(Leases, {
        ...current,
        spec: { ...current.spec, renewTime: new Date(clock).toISOString() },
      });
      await eventually(() => gate!.status.state === 'deferring' && running() === 0, show);
      const changes = statuses
        .map((s) => s.state)
        .filter((state, i, all) => i === 0 || all[i - 1] !== state);
      expect(changes).to.deep.equal(['deferring', 'acting', 'deferring']);
    });

    it('acts at once when no upstream Lease exists, or another driver holds its own', async function () {
      api.seed(Leases, lease('kube-system', 'external-snapshotter-leader-other-driver'));
      await start();
      await eventually(() => running() === 1, show);
      expect(gate!.status.state).to.equal('acting');
    });

    it('looks only in the namespaces given', async function () {
      api.seed(Leases, lease('elsewhere', 'external-snapshotter-leader-local-snapback-dev'));
      await start(['kube-system']);
      await eventually(() => running() === 1, show);
      expect(gate!.status.message).to.contain('(namespaces kube-system)');
    });

    it('acts, warning what to grant, when Leases may not be listed', async function () {
      const forbidden = () =>
        new ApiError(
          403,
          'Forbidden',
          'leases.coordination.k8s.io is forbidden: User "system:serviceaccount:snapback:snapback" cannot list resource "leases"',
        );
      for (let i = 0; i < 100; i++) api.failNext('list', 'leases', forbidden());
      await start();
      await eventually(() => running() === 1, show);
      expect(gate!.status.state).to.equal('unchecked');
    });

    it('keeps waiting through a transient failure, without starting', async function () {
      api.seed(Leases, lease('kube-system', 'external-snapshotter-leader-local-snapback-dev'));
      api.failNext('list', 'leases', new Error('connect ECONNREFUSED'));
      await start();
      await eventually(() => gate!.status.state === 'deferring', show);
      expect(instances).to.have.length(0);
    });
  });
});
