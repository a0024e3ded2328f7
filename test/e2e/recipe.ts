/**
 * The original ACK recipe, played with real pods through snapback's own objects: StatefulSet
 * `web` (examples/recipe-2-statefulset-web.yaml) gets its disk from the chart's StorageClass,
 * `kubectl exec web-0` writes /data/test, a BackupPolicy takes a snapshot right now, a
 * RestoreJob restores it into `disk-snapshot-restore`, and StatefulSet `web-restore`
 * (examples/recipe-5-statefulset-web-restore.yaml) mounts it: `kubectl exec web-restore-0 --
 * ls /data` lists `lost+found  test`. Each step shows the command a user would run and what it
 * printed.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import type { BackupPolicy, RestoreJob, VolumeSnapshot } from '../../src/api/index.js';
import type { HttpKubeClient } from '../../src/kube/index.js';
import { BackupPolicies, RestoreJobs } from '../../src/policy/objects.js';
import { VolumeSnapshots } from '../../src/kube/resource.js';
import { waitFor } from '../support/processes.js';
import { repoRoot } from '../support/tools.js';
import { boundClaim, type Claim, type Volume } from '../integration/stack/support.js';
import { CLASS, chartOnNode, whyNotReady, type ChartOnNode, type Kubectl } from './support.js';

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

/** The story of a run kept in memory: a test prints it only when it fails. */
export class RecordingNarrator implements Narrator {
  readonly lines: string[] = [];
  step(title: string): void {
    this.lines.push(`==> ${title}`);
  }
  note(text: string): void {
    this.lines.push(`    ${text}`);
  }
  shell(command: string, output: string): void {
    this.lines.push(`$ ${command}`, output.trimEnd());
  }
}

export interface RecipeContext {
  /** Acts as the user (cluster admin), never as the operator. */
  client: HttpKubeClient;
  kubectl: Kubectl;
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
  /** `ls /data` in web-restore-0, one entry per line as kubectl exec prints it. */
  restoredEntries: string[];
  restoredText: string;
}

type Manifest = Record<string, unknown> & {
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
};

/** The documents of a file in examples/. */
export function examples(file: string): Manifest[] {
  return parseAllDocuments(readFileSync(path.join(repoRoot, 'examples', file), 'utf8')).map(
    (doc) => doc.toJS() as Manifest,
  );
}

function example(file: string, kind: string, name: string): Manifest {
  const found = examples(file).find((m) => m.kind === kind);
  if (found?.metadata.name !== name) {
    throw new Error(`examples/${file} no longer holds ${kind} ${name}`);
  }
  return found;
}

const nsArgs = (context: RecipeContext) =>
  context.namespace === 'default' ? [] : ['-n', context.namespace];

/** `kubectl <args>` as the user types it, run and shown. */
export async function show(context: RecipeContext, args: string[]): Promise<string> {
  const full = [...nsArgs(context), ...args];
  const output = await context.kubectl(full);
  context.narrator.shell(['kubectl', ...full].join(' '), output);
  return output;
}

/** `kubectl apply -f -` of manifests, shown as a heredoc. */
export async function apply(context: RecipeContext, manifests: object[]): Promise<void> {
  const yaml = manifests.map((m) => stringify(m)).join('---\n');
  const args = [...nsArgs(context), 'apply', '-f', '-'];
  const output = await context.kubectl(args, yaml);
  context.narrator.shell(`kubectl ${args.join(' ')} <<'EOF'\n${yaml.trimEnd()}\nEOF`, output);
}

/** A shell quote for showing a command line. */
const quote = (arg: string) =>
  /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;

/** `kubectl exec <pod> -- <command>`, run and shown. */
export async function exec(
  context: RecipeContext,
  pod: string,
  command: string[],
): Promise<string> {
  const args = [...nsArgs(context), 'exec', pod, '--', ...command];
  const output = await context.kubectl(args);
  context.narrator.shell(`kubectl ${args.map(quote).join(' ')}`, output);
  return output;
}

/**
 * Waits for a StatefulSet's pods to be Ready, as `kubectl rollout status` does; if they do not
 * get Ready, says in one line which pod and container, why, and where its log is.
 */
export async function rolledOut(context: RecipeContext, name: string): Promise<void> {
  const seconds = Math.round(context.timeoutMs / 1000);
  await show(context, ['rollout', 'status', `statefulset/${name}`, `--timeout=${seconds}s`]).catch(
    async (error: Error) => {
      const why = await whyNotReady(context.kubectl, context.namespace, `app=${name}`).catch(
        (e: Error) => e.message,
      );
      throw new Error(`StatefulSet ${name} is not Ready after ${seconds} s: ${why}`, {
        cause: error,
      });
    },
  );
}

export async function playRecipe(context: RecipeContext): Promise<RecipeOutcome> {
  const { client, namespace, narrator, timeoutMs } = context;

  narrator.step(`StatefulSet web with its disk disk-ssd (StorageClass ${context.storageClass})`);
  const [service, web] = [
    example('recipe-2-statefulset-web.yaml', 'Service', 'web'),
    example('recipe-2-statefulset-web.yaml', 'StatefulSet', 'web'),
  ] as [Manifest, Manifest & { spec: WebSpec }];
  narrator.note(
    `examples/recipe-2-statefulset-web.yaml with storageClassName ${context.storageClass} ` +
      `and ${WEB_PVC_SIZE} instead of ACK's 20Gi SSD cloud disk.`,
  );
  const template = web.spec.volumeClaimTemplates[0]!;
  template.spec.storageClassName = context.storageClass;
  template.spec.resources.requests.storage = WEB_PVC_SIZE;
  await apply(context, [service, web]);
  await rolledOut(context, 'web');
  await show(context, ['get', 'pods,pvc', '-l', 'app=web', '-o', 'wide']);
  const source = await boundClaim(client, namespace, WEB_PVC, timeoutMs);

  narrator.step('Write /data/test in web-0');
  // what examples/recipe-2-statefulset-web.yaml says to run after applying it
  const written = 'hello\n';
  await exec(context, 'web-0', ['touch', '/data/test']);
  await exec(context, 'web-0', ['sh', '-c', 'echo hello > /data/test']);
  await exec(context, 'web-0', ['ls', '/data']);

  narrator.step(`Back it up: BackupPolicy ${POLICY}, run now`);
  const policyManifest = example('backuppolicy-web.yaml', 'BackupPolicy', POLICY);
  const token = String(Math.floor(Date.now() / 1000));
  narrator.note(
    `examples/backuppolicy-web.yaml with the chart's VolumeSnapshotClass ${context.snapshotClass} ` +
      'and the run-now annotation, so the first backup does not wait for 02:00. The ' +
      'snapshot is cut with web-0 running: the driver freezes its file system while it copies.',
  );
  await apply(context, [
    {
      ...policyManifest,
      metadata: {
        ...policyManifest.metadata,
        namespace,
        annotations: { 'snapback.dev/run-now': token },
      },
      spec: {
        ...(policyManifest.spec as object),
        snapshotClass: { name: context.snapshotClass },
      },
    },
  ]);
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
  const restoreManifest = example('restorejob-web.yaml', 'RestoreJob', RESTORE_JOB);
  if ((restoreManifest.spec as { target: { pvcName: string } }).target.pvcName !== RESTORED_PVC) {
    throw new Error(`examples/restorejob-web.yaml no longer restores into ${RESTORED_PVC}`);
  }
  narrator.note('examples/restorejob-web.yaml as it is: the newest ready snapshot of the policy.');
  await apply(context, [
    { ...restoreManifest, metadata: { ...restoreManifest.metadata, namespace } },
  ]);
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

  narrator.step(`StatefulSet web-restore mounts ${RESTORED_PVC}`);
  const webRestore = example('recipe-5-statefulset-web-restore.yaml', 'StatefulSet', 'web-restore');
  narrator.note('examples/recipe-5-statefulset-web-restore.yaml as it is.');
  await apply(context, [webRestore]);
  await rolledOut(context, 'web-restore');
  const restoredEntries = (await exec(context, 'web-restore-0', ['ls', '/data']))
    .split('\n')
    .filter((line) => line !== '');
  const restoredText = await exec(context, 'web-restore-0', ['cat', '/data/test']);

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

interface WebSpec {
  volumeClaimTemplates: {
    spec: { storageClassName?: string; resources: { requests: { storage: string } } };
  }[];
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

/**
 * The chart on a fresh node (`chartOnNode`), a namespace of its own for the test, and the
 * context the recipe's steps take there, with the chart's classes.
 */
export async function chartWithNamespace(
  dir: string,
  namespace: string,
  narrator: Narrator,
  timeoutMs: number,
  chartArgs: string[] = [],
): Promise<ChartOnNode & { context: RecipeContext }> {
  const onNode = await chartOnNode(dir, chartArgs);
  await onNode.kubectl(['create', 'namespace', namespace]);
  const context: RecipeContext = {
    client: onNode.client,
    kubectl: onNode.kubectl,
    namespace,
    storageClass: CLASS,
    snapshotClass: CLASS,
    narrator,
    timeoutMs,
  };
  return { ...onNode, context };
}
