import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  Leases,
  PersistentVolumeClaims,
  PersistentVolumes,
  type HttpKubeClient,
  type KubeObject,
} from '../../../src/kube/index.js';
import { VolumeSnapshots } from '../../../src/kube/resource.js';
import type { ControlPlane } from '../../support/control-plane.js';
import {
  createTestNamespace,
  deleteTestNamespace,
  kubeConfigFor,
  sharedControlPlane,
} from '../../support/cluster.js';
import { waitFor } from '../../support/processes.js';
import { claim, createClasses, deleteClasses, readySnapshot, volumeSnapshot } from './recipe.js';
import {
  apiClient,
  boundClaim,
  eventsFor,
  installCrds,
  startSnapback,
  waitForSocket,
  type Started,
  type Volume,
} from './support.js';

const LEASE = 'snapback-controller';

interface Replica {
  name: string;
  identity: string;
  process: Started;
}

/** The times at which a replica's log says it did something only an active replica does. */
function actions(replica: Replica): number[] {
  return replica.process
    .log()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => {
      try {
        return JSON.parse(line) as { message?: string; method?: string; timestamp?: string };
      } catch {
        return {};
      }
    })
    .filter(
      (entry) =>
        entry.message === 'snapshot cut' ||
        entry.message === 'volume provisioned' ||
        (entry.message === 'csi call' &&
          ['CreateVolume', 'CreateSnapshot', 'DeleteVolume', 'DeleteSnapshot'].includes(
            entry.method ?? '',
          )),
    )
    .map((entry) => new Date(entry.timestamp ?? 0).getTime());
}

describe('snapshot stack: two all-in-one replicas with leader election', function () {
  this.timeout(600_000);
  let controlPlane: ControlPlane;
  let client: HttpKubeClient;
  let namespace: string;
  let dir = '';
  const replicas: Replica[] = [];

  const holder = async () =>
    (
      await client.get<KubeObject & { spec?: { holderIdentity?: string } }>(
        Leases,
        LEASE,
        namespace,
      )
    )?.spec?.holderIdentity;

  before(async function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-le-'));
    controlPlane = await sharedControlPlane();
    client = apiClient(controlPlane);
    await installCrds(controlPlane);
    namespace = await createTestNamespace(kubeConfigFor(controlPlane), 'leader');
    await createClasses(client, namespace, { forceDelete: true });
    for (const name of ['a', 'b']) {
      const socket = path.join(dir, name, 'csi.sock');
      const identity = `replica-${name}`;
      const process = startSnapback(
        controlPlane,
        [
          'all-in-one',
          '--backend=local',
          `--root=${path.join(dir, name, 'disks')}`,
          `--node-id=node-${name}`,
          `--endpoint=unix://${socket}`,
          `--leader-election-namespace=${namespace}`,
          `--leader-election-identity=${identity}`,
          '--leader-election-lease-duration=6s',
          '--leader-election-renew-deadline=4s',
          '--leader-election-retry-period=500ms',
        ],
        path.join(dir, `${name}.log`),
      );
      replicas.push({ name, identity, process });
      await waitForSocket(socket, process);
    }
  });

  after(async function () {
    if (this.currentTest?.state === 'failed') {
      for (const r of replicas)
        console.log(`--- replica ${r.name}\n${r.process.log().slice(-5000)}`);
    }
    if (namespace) {
      await deleteTestNamespace(kubeConfigFor(controlPlane), namespace);
      const ours = async () =>
        (await client.list<Volume>(PersistentVolumes)).items.filter(
          (pv) => pv.spec?.storageClassName === namespace,
        );
      await waitFor(async () => (await ours()).length === 0, 120_000, 'the test PVs to go').catch(
        () => undefined,
      );
      await deleteClasses(client, namespace);
    }
    for (const r of replicas) await r.process.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('only the lease holder acts; after it stops, the other takes over, never both at once', async function () {
    const first = await waitFor(holder, 60_000, 'a replica to take the lease');
    const leader = replicas.find((r) => r.identity === first)!;
    const standby = replicas.find((r) => r.identity !== first)!;
    expect(leader, `lease held by ${first}`).to.not.equal(undefined);

    // work for the leader: a PVC and three snapshots of it
    await client.create(PersistentVolumeClaims, {
      ...claim('one', namespace),
      metadata: { name: 'one', namespace },
    });
    await boundClaim(client, namespace, 'one');
    for (const name of ['s1', 's2', 's3']) {
      await client.create(VolumeSnapshots, {
        ...volumeSnapshot(name, 'one', namespace),
        metadata: { name, namespace },
      });
    }
    for (const name of ['s1', 's2', 's3']) await readySnapshot(client, namespace, name);

    expect(actions(leader).length, 'the leader acted').to.be.greaterThan(0);
    expect(actions(standby), 'the standby did nothing').to.deep.equal([]);
    for (const name of ['s1', 's2', 's3']) {
      const hosts = (await eventsFor(client, namespace, 'VolumeSnapshot', name)).map((e) => e.host);
      expect(hosts.length).to.be.greaterThan(0);
      expect(new Set(hosts)).to.deep.equal(new Set([leader.identity]));
    }
    expect(await holder()).to.equal(leader.identity);

    // the leader stops (SIGTERM hands the lease over); the standby takes over
    const leaderLastAction = Math.max(...actions(leader));
    await leader.process.stop();
    await waitFor(
      async () => (await holder()) === standby.identity,
      60_000,
      'the standby to take the lease',
      async () => String(await holder()),
    );

    // new work is done by the new leader only (its own node's volume)
    await client.create(PersistentVolumeClaims, {
      ...claim('two', namespace),
      metadata: { name: 'two', namespace },
    });
    await boundClaim(client, namespace, 'two');
    await client.create(VolumeSnapshots, {
      ...volumeSnapshot('s4', 'two', namespace),
      metadata: { name: 's4', namespace },
    });
    await readySnapshot(client, namespace, 's4');
    const standbyActions = actions(standby);
    expect(standbyActions.length, 'the new leader acted').to.be.greaterThan(0);
    expect(Math.min(...standbyActions), 'no overlap between the two leaders').to.be.greaterThan(
      leaderLastAction,
    );
    const hosts = (await eventsFor(client, namespace, 'VolumeSnapshot', 's4')).map((e) => e.host);
    expect(new Set(hosts)).to.deep.equal(new Set([standby.identity]));
  });
});
