/**
 * The original ACK recipe, played through snapback's own objects: the `web` StatefulSet's
 * disk gets `/data/test` through a CSI node mount (kubelet's part), a BackupPolicy takes a
 * snapshot right now, a RestoreJob restores it into `disk-snapshot-restore`, and the restored
 * disk, mounted the same way, lists `lost+found  test` with the same text. Each step says what
 * a user would run and shows `kubectl get` as they would see it.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import type { BackupPolicy, RestoreJob, VolumeSnapshot } from '../../src/api/index.js';
import type { HttpKubeClient } from '../../src/kube/index.js';
import { BackupPolicies, RestoreJobs } from '../../src/policy/objects.js';
import { VolumeSnapshots } from '../../src/snapshot/sidecar/resources.js';
import { waitFor } from '../support/processes.js';
import { repoRoot } from '../support/tools.js';
import { boundClaim, type Claim, type Kubelet, type Volume } from '../integration/stack/support.js';
import { writeDurably } from '../integration/stack/recipe.js';

/** The PVC StatefulSet `web`'s volumeClaimTemplate `disk-ssd` gives pod web-0. */
export const WEB_PVC = 'disk-ssd-web-0';
export const POLICY = 'web-nightly';
export const RESTORE_JOB = 'web-restore';
export const RESTORED_PVC = 'disk-snapshot-restore';
/** Small enough for any laptop: the disk image is sparse, the snapshot copies only data. */
export const WEB_PVC_SIZE = '1Gi';

/** How a run tells its story: the demo prints it, the test keeps it for a failure report. */
export interface Narrator {
  step(title: string): void;
  note(text: string): void;
  /** A command as a user would type it, and what it printed. */
  shell(command: string, output: string): void;
}

export interface RecipeContext {
  /** Acts as the user (cluster admin), never as the operator. */
  client: HttpKubeClient;
  kubectl(args: string[], input?: string): Promise<string>;
  kubelet: Kubelet;
  namespace: string;
  /** The chart's StorageClass and VolumeSnapshotClass. */
  storageClass: string;
  snapshotClass: string;
  narrator: Narrator;
  /** Deadline of each wait. */
  timeoutMs: number;
}

export interface RecipeOutcome {
  source: { pvc: Claim; pv: Volume };
  policy: BackupPolicy;
  snapshot: VolumeSnapshot;
  restoreJob: RestoreJob;
  restored: { pvc: Claim; pv: Volume };
  written: string;
  restoredEntries: string[];
  restoredText: string;
}

const example = (file: string): Record<string, unknown> =>
  parse(readFileSync(path.join(repoRoot, 'examples', file), 'utf8')) as Record<string, unknown>;

/** `ls` as a terminal shows it: entries side by side, two spaces apart. */
const listing = (dir: string): string => execFileSync('ls', ['-C', dir], { encoding: 'utf8' });

/** `kubectl <args>` as the user types it, run and shown. */
async function show(context: RecipeContext, args: string[]): Promise<string> {
  const ns = context.namespace === 'default' ? [] : ['-n', context.namespace];
  const output = await context.kubectl([...ns, ...args]);
  context.narrator.shell(['kubectl', ...ns, ...args].join(' '), output);
  return output;
}

async function apply(context: RecipeContext, manifest: object): Promise<void> {
  const yaml = stringify(manifest);
  const ns = context.namespace === 'default' ? [] : ['-n', context.namespace];
  const output = await context.kubectl([...ns, 'apply', '-f', '-'], yaml);
  context.narrator.shell(
    `kubectl ${[...ns, 'apply', '-f', '-'].join(' ')} <<'EOF'\n${yaml.trimEnd()}\nEOF`,
    output,
  );
}

export async function playRecipe(context: RecipeContext): Promise<RecipeOutcome> {
  const { client, kubelet, namespace, narrator, timeoutMs } = context;

  narrator.step(
    `The disk of StatefulSet web: PVC ${WEB_PVC} of StorageClass ${context.storageClass}`,
  );
  narrator.note(
    'examples/recipe-2-statefulset-web.yaml creates it from its volumeClaimTemplate; with no ' +
      'StatefulSet controller here, the PVC is created as that controller would.',
  );
  await apply(context, {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: WEB_PVC, namespace, labels: { app: 'web' } },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: context.storageClass,
      resources: { requests: { storage: WEB_PVC_SIZE } },
    },
  });
  const source = await boundClaim(client, namespace, WEB_PVC, timeoutMs);
  await show(context, ['get', 'pvc', WEB_PVC]);
  await show(context, ['get', 'pv', source.pv.metadata!.name!]);

  narrator.step('Write /data/test in web-0, through a CSI node mount as kubelet makes it');
  const volumeHandle = source.pv.spec!.csi!.volumeHandle;
  const mounted = await kubelet.mount(source.pv);
  narrator.note(
    `NodeStageVolume + NodePublishVolume of ${volumeHandle}: web-0's /data is ${mounted}`,
  );
  const written = `hello from web-0, written before the backup at ${new Date().toISOString()}\n`;
  narrator.note(
    `what \`kubectl exec web-0 -- sh -c 'echo hello > /data/test'\` does in the recipe:`,
  );
  writeDurably(path.join(mounted, 'test'), written);
  narrator.shell(`echo '${written.trimEnd()}' > ${mounted}/test && sync`, '');
  narrator.shell(`ls ${mounted}`, listing(mounted));
  await kubelet.unmount(volumeHandle);
  narrator.note('NodeUnpublishVolume + NodeUnstageVolume: the file system is clean on the disk.');

  narrator.step(`Back it up: BackupPolicy ${POLICY}, run now`);
  const policyManifest = example('backuppolicy-web.yaml') as {
    metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
    spec: Record<string, unknown>;
  };
  if (policyManifest.metadata.name !== POLICY) {
    throw new Error(`examples/backuppolicy-web.yaml names ${policyManifest.metadata.name}`);
  }
  const token = String(Math.floor(Date.now() / 1000));
  narrator.note(
    `examples/backuppolicy-web.yaml with the chart's VolumeSnapshotClass ${context.snapshotClass} ` +
      'and the run-now annotation, so the first backup does not wait for 02:00.',
  );
  await apply(context, {
    ...policyManifest,
    metadata: {
      ...policyManifest.metadata,
      namespace,
      annotations: { 'snapback.dev/run-now': token },
    },
    spec: { ...policyManifest.spec, snapshotClass: { name: context.snapshotClass } },
  });
  const snapshotsOf = async () =>
    (
      await client.list<VolumeSnapshot>(VolumeSnapshots, {
        namespace,
        labelSelector: `snapback.dev/policy=${POLICY}`,
      })
    ).items;
  const snapshot = await waitFor(
    async () => (await snapshotsOf()).find((s) => s.status?.readyToUse === true),
    timeoutMs,
    `a ready VolumeSnapshot of BackupPolicy ${POLICY}`,
    async () =>
      JSON.stringify({
        policy: (await client.get<BackupPolicy>(BackupPolicies, POLICY, namespace))?.status,
        snapshots: (await snapshotsOf()).map((s) => ({ name: s.metadata.name, status: s.status })),
      }),
  );
  const policy = await waitFor(
    async () => {
      const p = await client.get<BackupPolicy>(BackupPolicies, POLICY, namespace);
      return p?.status?.lastSuccessfulTime && p.status.readyOverTotal === '1/1' ? p : undefined;
    },
    timeoutMs,
    `BackupPolicy ${POLICY} to report its successful run`,
    async () =>
      JSON.stringify((await client.get<BackupPolicy>(BackupPolicies, POLICY, namespace))?.status),
  );
  await show(context, ['get', 'backuppolicy', POLICY]);
  await show(context, ['get', 'volumesnapshots', '-l', `snapback.dev/policy=${POLICY}`]);
  await show(context, [
    'get',
    'volumesnapshotcontent',
    snapshot.status!.boundVolumeSnapshotContentName!,
  ]);

  narrator.step(`Restore it: RestoreJob ${RESTORE_JOB} into PVC ${RESTORED_PVC}`);
  const restoreManifest = example('restorejob-web.yaml') as {
    metadata: { name: string; namespace?: string };
    spec: { target: { pvcName: string } };
  };
  if (
    restoreManifest.metadata.name !== RESTORE_JOB ||
    restoreManifest.spec.target.pvcName !== RESTORED_PVC
  ) {
    throw new Error(
      'examples/restorejob-web.yaml no longer restores web-restore into ' + RESTORED_PVC,
    );
  }
  narrator.note('examples/restorejob-web.yaml as it is: the newest ready snapshot of the policy.');
  await apply(context, {
    ...restoreManifest,
    metadata: { ...restoreManifest.metadata, namespace },
  });
  const restoreJob = await waitFor(
    async () => {
      const job = await client.get<RestoreJob>(RestoreJobs, RESTORE_JOB, namespace);
      const phase = job?.status?.phase;
      return phase === 'Succeeded' || phase === 'Failed' ? job : undefined;
    },
    timeoutMs,
    `RestoreJob ${RESTORE_JOB} to finish`,
    async () =>
      JSON.stringify((await client.get<RestoreJob>(RestoreJobs, RESTORE_JOB, namespace))?.status),
  );
  await show(context, ['get', 'restorejob', RESTORE_JOB]);
  if (restoreJob.status?.phase !== 'Succeeded') {
    throw new Error(`RestoreJob ${RESTORE_JOB} failed: ${restoreJob.status?.message}`);
  }
  const restored = await boundClaim(client, namespace, RESTORED_PVC, timeoutMs);
  await show(context, ['get', 'pvc', RESTORED_PVC]);

  narrator.step(`Mount ${RESTORED_PVC} as web-restore-0 would and look at /data`);
  const restoredDir = await kubelet.mount(restored.pv);
  narrator.note(
    `NodeStageVolume + NodePublishVolume of ${restored.pv.spec!.csi!.volumeHandle}: ` +
      `web-restore-0's /data is ${restoredDir}`,
  );
  narrator.note('what `kubectl exec web-restore-0 -- ls /data` and `cat /data/test` show:');
  narrator.shell(`ls ${restoredDir}`, listing(restoredDir));
  const restoredEntries = readdirSync(restoredDir).sort();
  const restoredText = restoredEntries.includes('test')
    ? readFileSync(path.join(restoredDir, 'test'), 'utf8')
    : '';
  narrator.shell(`cat ${restoredDir}/test`, restoredText);
  await kubelet.unmount(restored.pv.spec!.csi!.volumeHandle);

  return {
    source,
    policy,
    snapshot,
    restoreJob,
    restored,
    written,
    restoredEntries,
    restoredText,
  };
}

/** The recipe's promise, checked: the restored disk holds exactly what was written. */
export function checkOutcome(outcome: RecipeOutcome): void {
  const entries = outcome.restoredEntries.join('  ');
  if (entries !== 'lost+found  test') {
    throw new Error(`the restored /data lists "${entries}", expected "lost+found  test"`);
  }
  if (outcome.restoredText !== outcome.written) {
    throw new Error(
      `the restored /data/test reads ${JSON.stringify(outcome.restoredText)}, ` +
        `expected ${JSON.stringify(outcome.written)}`,
    );
  }
}
