import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { VolumeGroupSnapshot } from '../../src/api/group-snapshot.js';
import type { BackupPolicy, RestoreJob, VolumeSnapshot } from '../../src/api/index.js';
import { VolumeGroupSnapshots, type HttpKubeClient } from '../../src/kube/index.js';
import { VolumeSnapshots } from '../../src/kube/resource.js';
import { BackupPolicies, RestoreJobs } from '../../src/policy/objects.js';
import { type NodeCluster } from '../support/node.js';
import { waitFor } from '../support/processes.js';
import { boundClaim } from '../integration/stack/support.js';
import {
  apply,
  chartWithNamespace,
  examples,
  exec,
  rolledOut,
  show,
  RecordingNarrator,
  type RecipeContext,
} from './recipe.js';
import { CLASS, type Kubectl } from './support.js';

const NAMESPACE = 'group';
const TIMEOUT_MS = 240_000;
const POLICY = 'db-group';
const MEMBERS = ['data-db-0', 'data-db-1', 'data-db-2'];
const SUFFIX = '-restored';
/**
 * Each pod appends a numbered line with the time in nanoseconds to /data/log every 50 ms: a
 * restored member holds exactly the lines written before its file system was frozen.
 */
const WRITER =
  'i=0; while true; do i=$((i+1)); echo "$i $(date +%s%N)" >> /data/log; sleep 0.05; done';

interface Manifest {
  kind: string;
  metadata: { name: string };
  spec: Record<string, unknown>;
}

/** The lines of a log, the last one complete (a line being appended is left out). */
const lines = (log: string): string[] => log.split('\n').slice(0, -1);
const nanos = (line: string): bigint => BigInt(line.split(' ')[1]!);

/**
 * A Group BackupPolicy on a real node: examples/backuppolicy-group.yaml's StatefulSet db (three
 * pods, each writing its own volume all the time) and policy, run now; its one
 * VolumeGroupSnapshot cut while the pods write, and every member restored by one RestoreJob
 * (pvcNameSuffix) and read back in a pod.
 */
describe('node: a StatefulSet’s three volumes snapshotted as one group while its pods write, and restored', function () {
  this.timeout(900_000);
  const narrator = new RecordingNarrator();
  let dir = '';
  let cluster: NodeCluster | undefined;
  let kubectl: Kubectl;
  let client: HttpKubeClient;
  let context: RecipeContext;

  before(async function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-group-e2e-'));
    ({ cluster, kubectl, client, context } = await chartWithNamespace(
      dir,
      NAMESPACE,
      narrator,
      TIMEOUT_MS,
      [],
    ));
  });

  afterEach(async function () {
    if (this.currentTest?.state !== 'failed') return;
    console.log(narrator.lines.join('\n'));
    console.log(
      await kubectl([
        '-n',
        'snapback',
        'logs',
        '-l',
        'app.kubernetes.io/instance=snapback',
        '--all-containers',
        '--prefix',
        '--tail=80',
      ]).catch((error: Error) => error.message),
    );
  });

  after(async function () {
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('cuts one group of the three PVCs at one instant and restores each member with exactly the lines written before it', async function () {
    const docs = examples('backuppolicy-group.yaml') as unknown as Manifest[];
    const db = docs.find((d) => d.kind === 'StatefulSet')!;
    const template = db.spec.template as {
      spec: { containers: Array<{ image: string; command: string[] }> };
    };
    // the node's images: Debian's nginx has sh, date and sleep
    template.spec.containers[0]!.image = 'nginx';
    template.spec.containers[0]!.command = ['sh', '-c', WRITER];
    const claims = db.spec.volumeClaimTemplates as Array<{ spec: { storageClassName: string } }>;
    claims[0]!.spec.storageClassName = CLASS;
    const policy = docs.find((d) => d.kind === 'BackupPolicy')! as Manifest & {
      metadata: { annotations?: Record<string, string> };
    };

    narrator.step('StatefulSet db: three pods, each appending to /data/log every 50 ms');
    await apply(
      context,
      docs.filter((d) => d !== policy),
    );
    await rolledOut(context, 'db');
    for (const pvc of MEMBERS) await boundClaim(client, NAMESPACE, pvc, TIMEOUT_MS);
    await waitFor(
      async () => {
        for (const [i] of MEMBERS.entries()) {
          const log = await exec(context, `db-${i}`, ['cat', '/data/log']);
          if (lines(log).length < 20) return false;
        }
        return true;
      },
      TIMEOUT_MS,
      'each pod to have written 20 lines',
    );

    narrator.step(`BackupPolicy ${POLICY} (consistency Group), run now`);
    policy.metadata.annotations = { 'snapback.dev/run-now': 'first' };
    await apply(context, [policy]);
    const groupsOf = async () =>
      (
        await client.list<VolumeGroupSnapshot>(VolumeGroupSnapshots, {
          namespace: NAMESPACE,
          labelSelector: `snapback.dev/policy=${POLICY}`,
        })
      ).items;
    const group = await waitFor(
      async () => {
        const [g, ...more] = await groupsOf();
        expect(more, 'groups of one run').to.deep.equal([]);
        return g?.status?.readyToUse ? g : undefined;
      },
      TIMEOUT_MS,
      `the policy's VolumeGroupSnapshot to be ready`,
      async () =>
        JSON.stringify({
          groups: await groupsOf(),
          policy: (await client.get<BackupPolicy>(BackupPolicies, POLICY, NAMESPACE))?.status,
        }),
    );
    await show(context, ['get', 'volumegroupsnapshots']);
    const members = (
      await client.list<VolumeSnapshot>(VolumeSnapshots, { namespace: NAMESPACE })
    ).items.filter((s) => s.status?.volumeGroupSnapshotName === group.metadata.name);
    expect(members, 'member VolumeSnapshots of the group').to.have.length(MEMBERS.length);
    expect(members.every((s) => s.status?.readyToUse)).to.equal(true);

    narrator.step(`RestoreJob db-restore: every member of the group into <pvc>${SUFFIX}`);
    await apply(context, [
      {
        apiVersion: 'snapback.dev/v1alpha1',
        kind: 'RestoreJob',
        metadata: { name: 'db-restore', namespace: NAMESPACE },
        spec: {
          source: { backupPolicy: { name: POLICY } },
          target: { pvcNameSuffix: SUFFIX },
        },
      },
    ]);
    const job = await waitFor(
      async () => {
        const j = await client.get<RestoreJob>(RestoreJobs, 'db-restore', NAMESPACE);
        return j?.status?.phase === 'Succeeded' || j?.status?.phase === 'Failed' ? j : undefined;
      },
      TIMEOUT_MS,
      'RestoreJob db-restore to finish',
      async () =>
        JSON.stringify(
          (await client.get<RestoreJob>(RestoreJobs, 'db-restore', NAMESPACE))?.status,
        ),
    );
    expect(job.status?.phase, job.status?.message).to.equal('Succeeded');
    await show(context, ['get', 'restorejobs,pvc']);

    narrator.step('Pod reader mounts the three restored PVCs');
    await apply(context, [
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'reader', namespace: NAMESPACE },
        spec: {
          containers: [
            {
              name: 'reader',
              image: 'nginx',
              volumeMounts: MEMBERS.map((pvc) => ({ name: pvc, mountPath: `/restored/${pvc}` })),
            },
          ],
          volumes: MEMBERS.map((pvc) => ({
            name: pvc,
            persistentVolumeClaim: { claimName: `${pvc}${SUFFIX}` },
          })),
        },
      },
    ]);
    await show(context, [
      'wait',
      '--for=condition=Ready',
      'pod/reader',
      `--timeout=${TIMEOUT_MS / 1000}s`,
    ]);

    const last: bigint[] = [];
    for (const [i, pvc] of MEMBERS.entries()) {
      const restored = lines(await exec(context, 'reader', ['cat', `/restored/${pvc}/log`]));
      const live = lines(await exec(context, `db-${i}`, ['cat', '/data/log']));
      expect(restored.length, `${pvc}: lines restored`).to.be.at.least(20);
      // the pods went on writing: the live log has more, and begins with what was restored
      expect(live.length, `${pvc}: lines written since the cut`).to.be.above(restored.length);
      expect(live.slice(0, restored.length), `${pvc}: the restored log`).to.deep.equal(restored);
      last.push(nanos(restored.at(-1)!));
    }
    // one instant: the newest line of each member was written within a second of the others'
    // (each pod writes every 50 ms; every file system was frozen before any was copied)
    const spread = Number(
      last.reduce((a, b) => (a > b ? a : b)) - last.reduce((a, b) => (a < b ? a : b)),
    );
    expect(spread / 1e6, 'ms between the members’ last lines').to.be.below(1000);
    const cut = Date.parse(group.status!.creationTime!) * 1e6;
    for (const t of last) {
      expect(Number(t) - cut, 'a member’s last line vs the group’s creationTime (ns)').to.be.below(
        1e9,
      );
    }
  });
});
