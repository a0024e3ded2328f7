import { expect } from 'chai';
import type { RestoreJob, RestoreJobSpecInput, SwapStatus } from '../../../src/api/index.js';
import { ANNOTATION_SWAP_JOB, FINALIZER_SWAP } from '../../../src/api/index.js';
import type { ObjectList } from '../../../src/kube/client.js';
import type {
  KubeClient,
  KubeObject,
  ResourceType,
  WatchEvent,
  WatchOptions,
} from '../../../src/kube/index.js';
import { Manager, PersistentVolumes, StorageClasses } from '../../../src/kube/index.js';
import { StatefulSets } from '../../../src/kube/resource.js';
import { RestoreJobs } from '../../../src/policy/objects.js';
import { RestoreJobController } from '../../../src/policy/restore-job-controller.js';
import type { StatefulSet } from '../../../src/policy/restore-swap.js';
import { FakeClock } from '../../support/fakes/clock.js';
import { FakeEventRecorder } from '../../support/fakes/event-recorder.js';
import { FakeKubeClient } from '../../support/fakes/kube-client.js';
import { waitFor } from '../../support/processes.js';
import { NS, pv, restoreJob, storageClass } from './fixtures.js';

const SWAP: RestoreJobSpecInput = {
  mode: 'Swap',
  source: { backupPolicy: { name: 'nightly' } },
  target: { workload: { kind: 'StatefulSet', name: 'db' } },
};

const VOLUMES: SwapStatus['volumes'] = [
  {
    claim: 'data-db-0',
    snapshotName: 'snap-1',
    restoredClaim: 'data-db-0-swap-job-uid',
    restoredVolume: 'pv-restored',
    retainedVolume: 'pv-old',
  },
];

/**
 * The RestoreJob controller's Swap glue against the in-memory API server, with a RestoreJob
 * cache that shows an older version of the job than the API server holds (as a list served
 * from a lagging watch cache can): the swap must act on the job as it is, not on the copy.
 */
describe('RestoreJob controller: a Swap is planned from the job as it is (glue, in-memory API server)', function () {
  this.timeout(30_000);
  let client: FakeKubeClient;
  let manager: Manager;

  afterEach(async function () {
    await manager?.stop();
  });

  /** A client whose RestoreJob list is `stale` and whose RestoreJob watch delivers nothing. */
  function lagging(inner: FakeKubeClient, stale: RestoreJob): KubeClient {
    return {
      get: (type, name, namespace) => inner.get(type, name, namespace),
      list: async <T extends KubeObject>(...args: Parameters<KubeClient['list']>) => {
        const list = await inner.list<T>(...args);
        if (args[0].plural !== RestoreJobs.plural) return list;
        return { ...list, items: [structuredClone(stale)] } as unknown as ObjectList<T>;
      },
      create: (type, obj, options) => inner.create(type, obj, options),
      replace: (type, obj, options) => inner.replace(type, obj, options),
      patch: (type, name, namespace, patchType, patch, options) =>
        inner.patch(type, name, namespace, patchType, patch, options),
      delete: (type, name, namespace, options) => inner.delete(type, name, namespace, options),
      watch: <T extends KubeObject>(
        type: ResourceType,
        options: WatchOptions,
        onEvent: (event: WatchEvent<T>) => void,
        onDone: (error?: unknown) => void,
      ) =>
        inner.watch<T>(
          type,
          options,
          (event) => {
            if (type.plural !== RestoreJobs.plural) onEvent(event);
          },
          onDone,
        ),
    };
  }

  it('a job rolled back while the cache still shows RetainingVolumes lets go of its finalizer and leaves the workload unlocked', async function () {
    client = new FakeKubeClient();
    const set: StatefulSet = {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'db', namespace: NS, generation: 1 },
      spec: {
        replicas: 1,
        serviceName: 'db',
        selector: { matchLabels: { app: 'db' } },
        template: { metadata: { labels: { app: 'db' } } },
        volumeClaimTemplates: [{ metadata: { name: 'data' } }],
      },
      status: { replicas: 1, readyReplicas: 1, observedGeneration: 1 },
    };
    client.seed(StatefulSets, set);
    client.seed(PersistentVolumes, pv('pv-old'), pv('pv-restored'));
    client.seed(StorageClasses, storageClass('local', { isDefault: true }));
    const swap = { workload: 'db', replicas: 1, volumes: VOLUMES };
    client.seed(
      RestoreJobs,
      restoreJob(SWAP, {
        status: { phase: 'Restoring', swap: { ...swap, step: 'RetainingVolumes' } },
      }),
    );
    await client.patch(RestoreJobs, 'restore-1', NS, 'merge', {
      metadata: { finalizers: [FINALIZER_SWAP] },
    });
    const stale = client.peek<RestoreJob>(RestoreJobs, 'restore-1', NS)!;
    // Since then, the swap went down, was rolled back and released the workload; only the
    // finalizer is left to remove.
    await client.patch(
      RestoreJobs,
      'restore-1',
      NS,
      'merge',
      {
        status: {
          phase: 'Failed',
          message: 'rolled back',
          swap: { ...swap, step: 'RolledBack', rollbackCause: 'not Ready in time' },
        },
      },
      { subresource: 'status' },
    );

    manager = new Manager({ client: lagging(client, stale) });
    const controller = new RestoreJobController({
      client,
      informers: manager.informers,
      recorder: new FakeEventRecorder(),
      clock: new FakeClock('2026-01-01T12:00:10Z'),
      workers: 1,
      restoreSwap: true,
    });
    manager.add(controller.controller);
    void manager.run();
    await manager.informers.waitForSync();

    const jobNow = () => client.peek<RestoreJob>(RestoreJobs, 'restore-1', NS)!;
    await waitFor(
      () => !(jobNow().metadata.finalizers ?? []).includes(FINALIZER_SWAP),
      10_000,
      'the swap finalizer removed',
      () => JSON.stringify(jobNow().metadata),
    );
    const after = client.peek<StatefulSet>(StatefulSets, 'db', NS)!;
    expect(after.metadata.annotations ?? {}).to.not.have.property(ANNOTATION_SWAP_JOB);
    expect(after.spec?.replicas).to.equal(1);
    expect(jobNow().status?.swap?.step).to.equal('RolledBack');
  });
});
