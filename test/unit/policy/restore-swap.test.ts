import { expect } from 'chai';
import type { RestoreJob, RestoreJobSpecInput } from '../../../src/api/index.js';
import {
  ANNOTATION_SWAP_JOB,
  ANNOTATION_SWAP_REPLICAS,
  FINALIZER_SWAP,
  RestoreJobSpecSchema,
} from '../../../src/api/index.js';
import type { Pod } from '../../../src/policy/hooks.js';
import type { Pv, Pvc } from '../../../src/policy/objects.js';
import { planRestoreJob } from '../../../src/policy/restore-job.js';
import type { StatefulSet, SwapAction } from '../../../src/policy/restore-swap.js';
import { restoredClaimName, workloadClaims } from '../../../src/policy/restore-swap.js';
import type { RestoreJobObservation } from '../../../src/policy/restore-job.js';
import {
  NS,
  groupPolicy,
  policy,
  restorableGroup,
  restorableGroupContent,
  restorableMember,
  restoreJob,
  restoreObservation,
  storageClass,
  volumeSnapshot,
} from './fixtures.js';

const SWAP: RestoreJobSpecInput = {
  mode: 'Swap',
  source: { backupPolicy: { name: 'nightly' } },
  target: { workload: { kind: 'StatefulSet', name: 'web' } },
};

interface Options {
  replicas?: number;
  /** Whether a pod on this PV becomes Ready (default: every pod does). */
  readyOn?: (pv: string) => boolean;
  readyTimeoutSeconds?: number;
  /** Reconcile number at which the controller is killed: after `crashAfter` of its actions, before the status. */
  crashAt?: number;
  crashAfter?: number;
  enabled?: boolean;
  /** The policy takes VolumeGroupSnapshots: g1, with a member per PVC. */
  group?: boolean;
  /** The StorageClass binds on first use (WaitForFirstConsumer). */
  bindOnFirstUse?: boolean;
}

/**
 * A namespace as the planner's actions change it, with what kube-controller-manager, the
 * provisioner and the kubelet would do in between: provisioning from a snapshot, binding a
 * PVC to the PV it names, the pvc-protection finalizer, the StatefulSet's pods and readiness.
 */
class World {
  now = new Date('2026-01-01T12:00:10Z');
  pvcs = new Map<string, Pvc>();
  pvs = new Map<string, Pv>();
  pods = new Map<string, Pod & { ready: boolean }>();
  set: StatefulSet;
  job: RestoreJob;
  log: string[] = [];
  private uids = 0;

  constructor(
    spec: RestoreJobSpecInput,
    private readonly options: Options = {},
  ) {
    const replicas = options.replicas ?? 1;
    this.set = {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'web', namespace: NS, uid: 'uid-web', generation: 1, annotations: {} },
      spec: {
        replicas,
        serviceName: 'web',
        selector: { matchLabels: { app: 'web' } },
        template: { metadata: { labels: { app: 'web' } } },
        volumeClaimTemplates: [
          {
            metadata: { name: 'data', labels: { tier: 'disk' } },
            spec: {
              accessModes: ['ReadWriteOnce'],
              storageClassName: 'local',
              resources: { requests: { storage: '1Gi' } },
            },
          },
        ],
      },
      status: { replicas: 0, readyReplicas: 0, observedGeneration: 1 },
    };
    for (const claim of workloadClaims(this.set)) {
      this.pvcs.set(claim, this.claim(claim, `old-${claim}`));
      this.pvs.set(`old-${claim}`, this.volume(`old-${claim}`, claim, 'Delete'));
    }
    this.job = restoreJob({
      ...spec,
      ...(options.readyTimeoutSeconds ? { readyTimeoutSeconds: options.readyTimeoutSeconds } : {}),
    });
    this.settle();
    this.settle();
  }

  private uid(): string {
    return `uid-${++this.uids}`;
  }

  private claim(name: string, volumeName: string | undefined, dataSource?: string): Pvc {
    return {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name, namespace: NS, uid: this.uid(), labels: { app: 'web' } },
      spec: {
        accessModes: ['ReadWriteOnce'],
        storageClassName: 'local',
        resources: { requests: { storage: '1Gi' } },
        ...(volumeName ? { volumeName } : {}),
        ...(dataSource
          ? {
              dataSource: {
                apiGroup: 'snapshot.storage.k8s.io',
                kind: 'VolumeSnapshot',
                name: dataSource,
              },
            }
          : {}),
      },
      status: { phase: volumeName ? 'Bound' : 'Pending' },
    };
  }

  private volume(name: string, claim: string, policy: string): Pv {
    return {
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name },
      spec: {
        capacity: { storage: '1Gi' },
        storageClassName: 'local',
        persistentVolumeReclaimPolicy: policy,
        claimRef: { namespace: NS, name: claim, uid: this.pvcs.get(claim)?.metadata.uid ?? '' },
      },
      status: { phase: 'Bound' },
    };
  }

  /** One round of the cluster's own controllers. */
  settle(): void {
    // the provisioner restores a PVC with a dataSource; the PV controller binds a named PV
    for (const pvc of this.pvcs.values()) {
      if (pvc.status?.phase === 'Bound') continue;
      if (!pvc.spec?.volumeName && pvc.spec?.dataSource) {
        const name = `pv-${pvc.metadata.name}`;
        this.pvs.set(name, this.volume(name, pvc.metadata.name!, 'Delete'));
        pvc.spec.volumeName = name;
      }
      const pv = pvc.spec?.volumeName ? this.pvs.get(pvc.spec.volumeName) : undefined;
      const ref = pv?.spec?.claimRef;
      if (
        pv &&
        ref &&
        ref.name === pvc.metadata.name &&
        (!ref.uid || ref.uid === pvc.metadata.uid)
      ) {
        ref.uid = pvc.metadata.uid!;
        pv.status = { phase: 'Bound' };
        pvc.status = { phase: 'Bound' };
      }
    }
    // pvc-protection: a PVC being deleted goes once no pod mounts it
    for (const pvc of [...this.pvcs.values()]) {
      if (pvc.metadata.deletionTimestamp && !this.mounted(pvc.metadata.name!)) this.remove(pvc);
    }
    // the StatefulSet controller: pods go one round after scaling down, come with their claims
    const replicas = this.set.spec!.replicas!;
    for (const pod of [...this.pods.values()]) {
      const ordinal = Number(pod.metadata.name!.split('-').at(-1));
      if (ordinal >= replicas) {
        if (pod.metadata.deletionTimestamp) this.pods.delete(pod.metadata.name!);
        else pod.metadata.deletionTimestamp = this.now.toISOString();
      }
    }
    for (let i = 0; i < replicas; i++) {
      const name = `web-${i}`;
      const claim = `data-web-${i}`;
      const existing = this.pods.get(name);
      if (existing) {
        const pv = this.pvcs.get(claim)?.spec?.volumeName ?? '';
        existing.ready = this.options.readyOn?.(pv) ?? true;
        continue;
      }
      if (!this.pvcs.has(claim)) {
        // as the StatefulSet controller would: a new, empty claim
        this.pvcs.set(claim, this.claim(claim, undefined));
        this.log.push(`statefulset created an empty ${claim}`);
      }
      this.pods.set(name, {
        metadata: {
          name,
          namespace: NS,
          ownerReferences: [
            { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'web', uid: 'uid-web' },
          ],
        },
        spec: {
          nodeName: 'node-1',
          containers: [],
          volumes: [{ name: 'data', persistentVolumeClaim: { claimName: claim } }],
        },
        ready: false,
      });
    }
    const pods = [...this.pods.values()];
    this.set.status = {
      replicas: pods.length,
      readyReplicas: pods.filter((p) => p.ready).length,
      observedGeneration: this.set.metadata.generation!,
    };
  }

  private mounted(claim: string): boolean {
    return [...this.pods.values()].some((p) =>
      p.spec!.volumes!.some((v) => v.persistentVolumeClaim?.claimName === claim),
    );
  }

  private remove(pvc: Pvc): void {
    this.pvcs.delete(pvc.metadata.name!);
    for (const [name, pv] of this.pvs) {
      if (pv.spec?.claimRef?.uid !== pvc.metadata.uid) continue;
      if (pv.spec?.persistentVolumeReclaimPolicy === 'Retain') pv.status = { phase: 'Released' };
      else {
        this.pvs.delete(name);
        this.log.push(`deleted PV ${name}`);
      }
    }
  }

  apply(action: SwapAction): void {
    switch (action.kind) {
      case 'createPvc':
        if (!this.pvcs.has(action.pvc.metadata.name!)) {
          const pvc = structuredClone(action.pvc);
          pvc.metadata.uid = this.uid();
          pvc.status = { phase: 'Pending' };
          this.pvcs.set(pvc.metadata.name!, pvc);
        }
        return;
      case 'deletePvc': {
        const pvc = this.pvcs.get(action.name);
        if (!pvc || pvc.metadata.uid !== action.uid) return;
        if (this.mounted(action.name)) pvc.metadata.deletionTimestamp = this.now.toISOString();
        else this.remove(pvc);
        return;
      }
      case 'reclaimPolicy':
        this.pvs.get(action.pv)!.spec!.persistentVolumeReclaimPolicy = action.policy;
        return;
      case 'claimPv': {
        const pv = this.pvs.get(action.pv)!;
        pv.spec!.claimRef = { namespace: NS, name: action.claim };
        if (pv.status?.phase === 'Released') pv.status = { phase: 'Available' };
        return;
      }
      case 'scale':
        this.set.spec!.replicas = action.replicas;
        this.set.metadata.generation! += 1;
        return;
      case 'lock': {
        const annotations = this.set.metadata.annotations!;
        if (action.replicas === undefined) {
          delete annotations[ANNOTATION_SWAP_JOB];
          delete annotations[ANNOTATION_SWAP_REPLICAS];
        } else {
          annotations[ANNOTATION_SWAP_JOB] = this.job.metadata.uid!;
          annotations[ANNOTATION_SWAP_REPLICAS] = String(action.replicas);
        }
        return;
      }
    }
  }

  /** What the RestoreJob planner sees now. */
  observe(): RestoreJobObservation {
    const claims = workloadClaims(this.set);
    const group = restorableGroup('g1');
    const source = this.options.group
      ? {
          snapshots: claims.map((c) => restorableMember(group, c)),
          policies: [groupPolicy()],
          groups: {
            snapshots: [group],
            content: () => restorableGroupContent(group, claims.length),
          },
        }
      : {
          snapshots: claims.map((c, i) => volumeSnapshot(`snap-${i}`, { pvc: c })),
          policies: [policy({ pvcNames: claims })],
        };
    const local = storageClass('local', { isDefault: true });
    if (this.options.bindOnFirstUse) local.volumeBindingMode = 'WaitForFirstConsumer';
    return restoreObservation(this.job, {
      ...source,
      pvcs: structuredClone([...this.pvcs.values()]),
      storageClasses: [local],
      now: this.now,
      ...(this.options.enabled === false
        ? {}
        : {
            swap: {
              workload: structuredClone(this.set),
              pods: structuredClone([...this.pods.values()]),
              pv: (name: string) => structuredClone(this.pvs.get(name)),
            },
          }),
    });
  }

  /** One reconcile, as the controller does it; a crash skips the rest of it. */
  reconcile(index: number): void {
    const plan = planRestoreJob(this.observe());
    const finalizers = (this.job.metadata.finalizers ??= []);
    if (plan.finalizer && 'add' in plan.finalizer) finalizers.push(plan.finalizer.add);
    const actions = plan.swapActions ?? [];
    const crash = index === this.options.crashAt;
    const done = crash ? actions.slice(0, this.options.crashAfter ?? actions.length) : actions;
    for (const a of done) this.apply(a);
    if (crash) return;
    if (plan.status) this.job.status = plan.status;
    if (plan.finalizer && 'remove' in plan.finalizer) {
      const remove = plan.finalizer.remove;
      this.job.metadata.finalizers = finalizers.filter((f) => f !== remove);
    }
  }

  /** Reconciles, with the cluster settling in between, until the job ends. */
  run(maxRounds = 200): RestoreJob {
    for (let i = 0; i < maxRounds; i++) {
      this.reconcile(i);
      const phase = this.job.status?.phase;
      if ((phase === 'Succeeded' || phase === 'Failed') && !this.job.metadata.finalizers?.length)
        return this.job;
      this.settle();
      this.now = new Date(this.now.getTime() + 1000);
    }
    throw new Error(`no end after ${maxRounds} rounds: ${JSON.stringify(this.job.status)}`);
  }

  boundTo(claim: string): string | undefined {
    const pvc = this.pvcs.get(claim);
    return pvc?.status?.phase === 'Bound' ? pvc.spec?.volumeName : undefined;
  }
}

const restoredPv = (world: World, claim: string) => `pv-${restoredClaimName(claim, world.job)}`;

describe('RestoreJob mode Swap', function () {
  describe('the API', function () {
    it('takes mode Swap with target.workload, defaulting readyTimeoutSeconds to 600', function () {
      const spec = RestoreJobSpecSchema.parse(SWAP);
      expect(spec).to.include({ mode: 'Swap', readyTimeoutSeconds: 600 });
    });

    it('refuses Swap without a workload, a workload with New, a PVC name with Swap, and a snapshot source', function () {
      const refused = (spec: unknown) => {
        const result = RestoreJobSpecSchema.safeParse(spec);
        expect(result.success, JSON.stringify(spec)).to.equal(false);
        return result.error!.issues.map((i) => i.message).join('; ');
      };
      expect(refused({ ...SWAP, target: { pvcName: 'x' } })).to.contain(
        'mode Swap restores in place and needs target.workload',
      );
      expect(refused({ ...SWAP, mode: 'New' })).to.contain('target.workload needs mode Swap');
      expect(refused({ ...SWAP, target: { ...SWAP.target, pvcName: 'x' } })).to.contain(
        'exactly one of target.pvcName, target.pvcNameSuffix or target.workload',
      );
      expect(refused({ ...SWAP, source: { volumeSnapshotName: 's' } })).to.contain(
        'mode Swap restores each PVC of the workload from a BackupPolicy',
      );
      expect(
        refused({ ...SWAP, target: { workload: { kind: 'Deployment', name: 'web' } } }),
      ).to.match(/StatefulSet/);
    });
  });

  describe('a swap from start to end', function () {
    it('restores, scales to 0, binds the restored volumes under the original names, scales back and ends Succeeded', function () {
      const world = new World(SWAP, { replicas: 2 });
      const steps: string[] = [];
      for (
        let i = 0;
        i < 200 && !['Succeeded', 'Failed'].includes(world.job.status?.phase ?? '');
        i++
      ) {
        world.reconcile(i);
        const step = world.job.status?.swap?.step;
        if (step && steps.at(-1) !== step) steps.push(step);
        world.settle();
        world.now = new Date(world.now.getTime() + 1000);
      }
      expect(steps).to.deep.equal([
        'RestoringVolumes',
        'RetainingVolumes',
        'ScalingDown',
        'ReplacingClaims',
        'WaitingForReady',
        'Done',
      ]);
      const job = world.job;
      expect(job.status?.phase, job.status?.message).to.equal('Succeeded');
      expect(job.status?.conditions?.[0]).to.include({ status: 'True', reason: 'Swapped' });
      expect(job.metadata.finalizers).to.deep.equal([]);
      for (const claim of ['data-web-0', 'data-web-1']) {
        expect(world.boundTo(claim)).to.equal(restoredPv(world, claim));
        // the old volume is kept, Retain, and named in the status
        expect(world.pvs.get(`old-${claim}`)?.spec?.persistentVolumeReclaimPolicy).to.equal(
          'Retain',
        );
        expect(job.status?.swap?.volumes.find((v) => v.claim === claim)).to.deep.include({
          retainedVolume: `old-${claim}`,
          restoredVolume: restoredPv(world, claim),
        });
        // the restored volume is the workload's now: back to the class's policy
        expect(
          world.pvs.get(restoredPv(world, claim))?.spec?.persistentVolumeReclaimPolicy,
        ).to.equal('Delete');
        expect(world.pvcs.get(claim)?.metadata.labels).to.deep.equal({ tier: 'disk', app: 'web' });
      }
      expect(world.set.spec?.replicas).to.equal(2);
      expect(world.set.status?.readyReplicas).to.equal(2);
      expect(world.set.metadata.annotations).to.deep.equal({});
      expect([...world.pvcs.keys()].sort()).to.deep.equal(['data-web-0', 'data-web-1']);
      expect(world.log, 'nothing deleted, no empty claim').to.deep.equal([]);
      expect(job.status?.message).to.contain('delete them once the restored data is trusted');
    });

    it('from a Group policy: every PVC from the members of one VolumeGroupSnapshot', function () {
      const world = new World(SWAP, { replicas: 2, group: true });
      const job = world.run();
      expect(job.status?.phase, job.status?.message).to.equal('Succeeded');
      expect(job.status?.volumeGroupSnapshotName).to.equal('g1');
      expect(job.status?.swap?.volumes.map((v) => [v.claim, v.snapshotName])).to.deep.equal([
        ['data-web-0', 'g1-data-web-0'],
        ['data-web-1', 'g1-data-web-1'],
      ]);
      for (const claim of ['data-web-0', 'data-web-1'])
        expect(world.boundTo(claim)).to.equal(restoredPv(world, claim));
    });

    it('a class that binds on first use: each restored PVC is provisioned on the node of the pod using the claim', function () {
      const world = new World(SWAP, { bindOnFirstUse: true });
      const plan = planRestoreJob(world.observe());
      const created = plan.swapActions?.find((a) => a.kind === 'createPvc');
      expect(created?.kind === 'createPvc' && created.pvc.metadata.annotations).to.include({
        'volume.kubernetes.io/selected-node': 'node-1',
      });
    });

    it('rolls back to the old volumes when the pods are not Ready in time, and scales back', function () {
      const world = new World(SWAP, {
        replicas: 1,
        readyTimeoutSeconds: 30,
        readyOn: (pv) => pv.startsWith('old-'),
      });
      const job = world.run();
      expect(job.status?.phase).to.equal('Failed');
      expect(job.status?.swap?.step).to.equal('RolledBack');
      expect(job.status?.conditions?.[0]?.reason).to.equal('RolledBack');
      expect(job.status?.message).to.contain('was not Ready within 30s');
      expect(job.status?.message).to.contain(
        `restored volumes ${restoredPv(world, 'data-web-0')} are kept`,
      );
      expect(world.boundTo('data-web-0')).to.equal('old-data-web-0');
      expect(world.set.spec?.replicas).to.equal(1);
      world.settle();
      world.settle();
      expect(world.set.status?.readyReplicas).to.equal(1);
      expect(world.pvs.get('old-data-web-0')?.spec?.persistentVolumeReclaimPolicy).to.equal(
        'Delete',
      );
      expect(world.pvs.has(restoredPv(world, 'data-web-0'))).to.equal(true);
      expect(world.log).to.deep.equal([]);
    });

    it('rolls back when the job is deleted while the workload is down', function () {
      const world = new World(SWAP);
      for (let i = 0; i < 100 && world.job.status?.swap?.step !== 'ReplacingClaims'; i++) {
        world.reconcile(i);
        world.settle();
      }
      world.job.metadata.deletionTimestamp = world.now.toISOString();
      const job = world.run();
      expect(job.status?.swap?.step).to.equal('RolledBack');
      expect(job.status?.message).to.contain('being deleted while the workload is down');
      expect(world.boundTo('data-web-0')).to.equal('old-data-web-0');
      expect(world.set.spec?.replicas).to.equal(1);
      expect(job.metadata.finalizers).to.deep.equal([]);
    });
  });

  describe('killed at any point', function () {
    // Every reconcile of a clean run, killed after each of its actions in turn (and after all
    // of them), before its status is written: the swap still ends as it would have.
    const clean = new World(SWAP, { replicas: 2 });
    let rounds = 0;
    let held = false;
    for (; rounds < 200 && clean.job.status?.phase !== 'Succeeded'; rounds++) {
      clean.reconcile(rounds);
      if (clean.set.spec?.replicas === 0)
        held ||= clean.job.metadata.finalizers?.includes(FINALIZER_SWAP) ?? false;
      clean.settle();
    }

    it('the clean run has a few reconciles to kill', function () {
      expect(clean.job.status?.phase).to.equal('Succeeded');
      expect(rounds).to.be.greaterThan(5);
      // while the workload is down, deleting the job cannot lose the swap
      expect(held).to.equal(true);
    });

    for (let crashAt = 0; crashAt < rounds; crashAt++) {
      for (const crashAfter of [0, 1, 2, 99]) {
        it(`reconcile ${crashAt}, after ${crashAfter === 99 ? 'all' : crashAfter} action(s): Succeeded, replicas back, restored volumes bound`, function () {
          const world = new World(SWAP, { replicas: 2, crashAt, crashAfter });
          const job = world.run();
          expect(job.status?.phase, job.status?.message).to.equal('Succeeded');
          expect(world.set.spec?.replicas).to.equal(2);
          for (const claim of ['data-web-0', 'data-web-1']) {
            expect(world.boundTo(claim)).to.equal(restoredPv(world, claim));
            expect(world.pvs.has(`old-${claim}`)).to.equal(true);
          }
          expect(world.log).to.deep.equal([]);
        });
      }
    }

    const rollback = () =>
      ({ readyTimeoutSeconds: 20, readyOn: (pv: string) => pv.startsWith('old-') }) as const;
    const cleanRollback = new World(SWAP, rollback());
    let rollbackRounds = 0;
    for (; rollbackRounds < 200 && cleanRollback.job.status?.phase !== 'Failed'; rollbackRounds++) {
      cleanRollback.reconcile(rollbackRounds);
      cleanRollback.settle();
      cleanRollback.now = new Date(cleanRollback.now.getTime() + 1000);
    }
    it('the clean rollback ends RolledBack', function () {
      expect(cleanRollback.job.status?.swap?.step).to.equal('RolledBack');
      expect(rollbackRounds).to.be.greaterThan(5);
    });

    for (let crashAt = 0; crashAt < rollbackRounds; crashAt += 2) {
      it(`a rollback killed at reconcile ${crashAt}: rolled back, old volumes bound, replicas back`, function () {
        const world = new World(SWAP, { ...rollback(), crashAt, crashAfter: 1 });
        const job = world.run();
        expect(job.status?.swap?.step, job.status?.message).to.equal('RolledBack');
        expect(world.boundTo('data-web-0')).to.equal('old-data-web-0');
        expect(world.set.spec?.replicas).to.equal(1);
        expect(world.log).to.deep.equal([]);
      });
    }
  });

  describe('bad input touches nothing', function () {
    const untouched = (world: World) => {
      expect(world.set.spec?.replicas).to.equal(1);
      expect(world.set.metadata.annotations).to.deep.equal({});
      expect(world.boundTo('data-web-0')).to.equal('old-data-web-0');
      expect(world.pvs.get('old-data-web-0')?.spec?.persistentVolumeReclaimPolicy).to.equal(
        'Delete',
      );
      expect([...world.pvcs.keys()]).to.deep.equal(['data-web-0']);
      expect(world.job.metadata.finalizers ?? []).to.deep.equal([]);
    };

    it('a workload whose PVCs the policy has no snapshot of: WorkloadNotCovered', function () {
      const world = new World({
        ...SWAP,
        source: { backupPolicy: { name: 'other' } },
      });
      const job = world.run();
      expect(job.status?.conditions?.[0]?.reason).to.equal('WorkloadNotCovered');
      expect(job.status?.message).to.contain(
        'StatefulSet web mounts PVC data-web-0, which BackupPolicy other has no snapshot of',
      );
      untouched(world);
    });

    it('a source PVC that is not the workload’s: WorkloadNotCovered, naming its PVCs', function () {
      const world = new World({
        ...SWAP,
        source: { backupPolicy: { name: 'nightly', pvcName: 'db' } },
      });
      const job = world.run();
      expect(job.status?.conditions?.[0]?.reason).to.equal('WorkloadNotCovered');
      expect(job.status?.message).to.contain(
        'PVC db (source.backupPolicy.pvcName) is not a PVC of StatefulSet web, whose PVCs are data-web-0',
      );
      untouched(world);
    });

    it('a missing workload: WorkloadNotFound', function () {
      const world = new World({
        ...SWAP,
        target: { workload: { kind: 'StatefulSet', name: 'db' } },
      });
      // the observation is of target.workload: there is none
      world.set.metadata.name = 'web';
      const plan = planRestoreJob(
        restoreObservation(world.job, {
          swap: { workload: undefined, pods: [], pv: () => undefined },
        }),
      );
      expect(plan.status?.phase).to.equal('Failed');
      expect(plan.status?.conditions?.[0]?.reason).to.equal('WorkloadNotFound');
      expect(plan.swapActions).to.deep.equal([]);
    });

    it('a workload another swap holds: WorkloadBusy', function () {
      const world = new World(SWAP);
      world.set.metadata.annotations![ANNOTATION_SWAP_JOB] = 'another-job';
      world.run();
      expect(world.job.status?.conditions?.[0]?.reason).to.equal('WorkloadBusy');
      expect(world.set.metadata.annotations).to.deep.equal({
        [ANNOTATION_SWAP_JOB]: 'another-job',
      });
    });

    it('without --restore-swap: SwapDisabled', function () {
      const world = new World(SWAP, { enabled: false });
      const job = world.run();
      expect(job.status?.conditions?.[0]?.reason).to.equal('SwapDisabled');
      expect(job.status?.message).to.contain('restore.swap.enabled');
      untouched(world);
    });

    it('a snapshot that is not ready waits Pending with the workload untouched; a ready one is held', function () {
      const world = new World(SWAP);
      const observe = (ready: boolean) =>
        planRestoreJob(
          restoreObservation(world.job, {
            snapshots: [volumeSnapshot('snap-0', { pvc: 'data-web-0', ready })],
            pvcs: [...world.pvcs.values()],
            policies: [policy({ pvcNames: ['data-web-0'] })],
            swap: { workload: world.set, pods: [], pv: () => undefined },
          }),
        );
      const waiting = observe(false);
      expect(waiting.status?.phase).to.equal('Pending');
      expect(waiting.status?.message).to.contain(
        'before touching it: data-web-0: waiting for a snapshot of PVC data-web-0',
      );
      expect(waiting.swapActions).to.deep.equal([]);
      const restoring = observe(true);
      expect(restoring.status?.phase).to.equal('Restoring');
      expect(restoring.holdMembers?.map((s) => s.metadata.name)).to.deep.equal(['snap-0']);
      expect(restoring.swapActions?.map((a) => a.kind)).to.deep.equal(['createPvc']);
      expect(restoring.finalizer).to.deep.equal({ add: FINALIZER_SWAP });
    });
  });
});
