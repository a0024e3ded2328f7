/**
 * 100 BackupPolicies x 10 PVCs firing in the same minute: how long until all 1000
 * VolumeSnapshots exist and are ready, the policy controller's peak RSS, and API requests per
 * snapshot. The peer, measured in the same run on the same control plane, driver and embedded
 * snapshot stack: the same 1000 snapshots created directly by a client (20 in flight), as a
 * script applying the recipe by hand would. The policy layer's cost is the difference.
 *
 *   make bench BENCH=policy ARGS='[--policies=100] [--pvcs=10] [--qps=50]
 *     [--burst=100] [--one-process] [--json=<file>]'
 *
 * Processes (each started and stopped by PID): the local-backend driver, the embedded stack
 * (`snapback controller --policy=false`), and the policy controllers alone (`snapback controller
 * --policy=true` with every other part off); with --one-process the policy controllers run in
 * the stack's process instead, as the chart runs them, and its peak is the one reported. Needs root (the local backend); `make bench` builds
 * dist/ and the tools first.
 * Figures, not assertions.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import type { VolumeSnapshot } from '../../src/api/index.js';
import { HttpKubeClient, type KubeObject } from '../../src/kube/index.js';
import { BackupPolicies } from '../../src/policy/objects.js';
import { VolumeSnapshotContents, VolumeSnapshots } from '../../src/kube/resource.js';
import { startControlPlane, type ControlPlane } from '../../test/support/control-plane.js';
import { kubectl } from '../../test/support/cluster.js';
import { waitFor } from '../../test/support/processes.js';
import { repoRoot, tool } from '../../test/support/tools.js';
import {
  apiRequestCounts,
  BenchProcesses,
  createLocalClasses,
  inParallel,
  numberFlag as flag,
  peakRssMiB,
  provisionPvcs,
  snapbackMain,
  stringFlag,
  total,
} from '../support.js';

const NAMESPACE = 'bench';

const POLICIES = flag('policies', 100);
const PVCS_PER_POLICY = flag('pvcs', 10);
const QPS = flag('qps', 50);
const BURST = flag('burst', 100);
const JSON_OUT = stringFlag('json');
const TOTAL = POLICIES * PVCS_PER_POLICY;
/** The policy controllers in the stack's process (as the chart runs them), not one of their own. */
const ONE_PROCESS = process.argv.includes('--one-process');

const work = mkdtempSync(path.join(os.tmpdir(), 'snapback-bench-policy-'));
const processes = new BenchProcesses(work);

/** Runs the compiled snapback with `args`. */
const spawn = (name: string, args: string[], env: NodeJS.ProcessEnv) =>
  processes.spawn(name, process.execPath, [snapbackMain(), ...args], env);

/** apiserver_request_total over every resource, summed. */
const apiRequests = async (controlPlane: ControlPlane): Promise<number> =>
  total(await apiRequestCounts(controlPlane));

const pvcName = (p: number, v: number) => `p${String(p).padStart(3, '0')}-v${v}`;

/** Counts ready snapshots by listing (once a second); returns when `count` are ready. */
async function untilReady(
  observer: HttpKubeClient,
  count: number,
  labelSelector: string | undefined,
): Promise<{ existAt: number; readyAt: number }> {
  let existAt = 0;
  for (;;) {
    const { items } = await observer.list<VolumeSnapshot>(VolumeSnapshots, {
      namespace: NAMESPACE,
      ...(labelSelector ? { labelSelector } : {}),
    });
    if (!existAt && items.length >= count) existAt = performance.now();
    if (items.filter((s) => s.status?.readyToUse).length >= count) {
      return { existAt, readyAt: performance.now() };
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function deleteAllSnapshots(client: HttpKubeClient): Promise<void> {
  const { items } = await client.list<VolumeSnapshot>(VolumeSnapshots, { namespace: NAMESPACE });
  await inParallel(items, 20, async (s) => {
    await client.delete(VolumeSnapshots, s.metadata.name!, NAMESPACE);
  });
  await waitFor(
    async () => (await client.list(VolumeSnapshotContents, { limit: 1 })).items.length === 0,
    900_000,
    'every content to be deleted',
  );
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the local backend needs root');
  console.log('starting a control plane ...');
  const controlPlane = await startControlPlane();
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(controlPlane.kubeconfig);
  const client = new HttpKubeClient(kc, { qps: 1000, burst: 1000 });
  const observer = new HttpKubeClient(kc, { qps: 1000, burst: 1000 });
  const env = {
    ...process.env,
    KUBECONFIG: controlPlane.kubeconfig,
    SNAPBACK_CSI_PROTO: tool('CSI_PROTO'),
    SNAPBACK_LOG_LEVEL: 'warn',
  };
  const qpsFlags = [`--kube-api-qps=${QPS}`, `--kube-api-burst=${BURST}`];
  try {
    await kubectl(controlPlane, ['apply', '--server-side', '-f', path.join(repoRoot, 'crds')]);
    await kubectl(controlPlane, [
      'wait',
      '--for=condition=Established',
      '-f',
      path.join(repoRoot, 'crds'),
    ]);
    await kubectl(controlPlane, ['create', 'namespace', NAMESPACE]);
    const socket = path.join(work, 'csi.sock');
    spawn(
      'driver',
      [
        'driver',
        '--backend=local',
        `--root=${path.join(work, 'disks')}`,
        '--node-id=bench',
        `--endpoint=unix://${socket}`,
      ],
      env,
    );
    const stack = spawn(
      'stack',
      [
        'controller',
        `--csi-address=unix://${socket}`,
        `--policy=${ONE_PROCESS}`,
        '--leader-election=false',
        ...qpsFlags,
      ],
      env,
    );
    await createLocalClasses(client, { defaultSnapshotClass: true });

    console.log(`provisioning ${TOTAL} PVCs (not measured) ...`);
    const names: string[] = [];
    for (let p = 0; p < POLICIES; p++)
      for (let v = 0; v < PVCS_PER_POLICY; v++) names.push(pvcName(p, v));
    await provisionPvcs(
      client,
      NAMESPACE,
      names.map((name) => ({ name, labels: { policy: name.slice(0, 4) } })),
      () => readFileSync(stack.log, 'utf8').slice(-2000),
    );

    // Peer: the same snapshots, created directly.
    console.log(`peer: ${TOTAL} VolumeSnapshots created directly ...`);
    const directBefore = await apiRequests(controlPlane);
    const observerBefore = observer.requests;
    const t0 = performance.now();
    const directDone = untilReady(observer, TOTAL, undefined);
    await inParallel(names, 20, async (name) => {
      await client.create(VolumeSnapshots, {
        metadata: { name: `direct-${name}`, namespace: NAMESPACE },
        spec: { source: { persistentVolumeClaimName: name } },
      } as KubeObject);
    });
    const direct = await directDone;
    const directRequests =
      (await apiRequests(controlPlane)) - directBefore - (observer.requests - observerBefore);
    await deleteAllSnapshots(client);

    // The policies: all scheduled for the same minute, at least 90 s ahead.
    const policyProc = ONE_PROCESS
      ? stack
      : spawn(
          'policy',
          [
            'controller',
            '--policy=true',
            '--snapshot-controller=false',
            '--csi-snapshotter=false',
            '--csi-provisioner=false',
            '--leader-election=false',
            ...qpsFlags,
          ],
          env,
        );
    const fire = new Date(Math.ceil((Date.now() + 90_000) / 60_000) * 60_000);
    const schedule = `${fire.getUTCMinutes()} ${fire.getUTCHours()} * * *`;
    console.log(`${POLICIES} policies x ${PVCS_PER_POLICY} PVCs, schedule "${schedule}" (UTC) ...`);
    await inParallel(
      Array.from({ length: POLICIES }, (_, p) => p),
      20,
      async (p) => {
        await client.create(BackupPolicies, {
          apiVersion: 'snapback.dev/v1alpha1',
          kind: 'BackupPolicy',
          metadata: { name: `policy-${p}`, namespace: NAMESPACE },
          spec: { schedule, selector: { matchLabels: { policy: pvcName(p, 0).slice(0, 4) } } },
        } as KubeObject);
      },
    );
    await new Promise((r) => setTimeout(r, Math.max(0, fire.getTime() - 5_000 - Date.now())));
    const policyBefore = await apiRequests(controlPlane);
    const observer2Before = observer.requests;
    await new Promise((r) => setTimeout(r, Math.max(0, fire.getTime() - Date.now())));
    const t1 = performance.now();
    const scheduled = await untilReady(observer, TOTAL, 'snapback.dev/policy');
    const policyRequests =
      (await apiRequests(controlPlane)) - policyBefore - (observer.requests - observer2Before);

    const summary = {
      policies: POLICIES,
      pvcsPerPolicy: PVCS_PER_POLICY,
      snapshots: TOTAL,
      qps: QPS,
      burst: BURST,
      direct: {
        secondsUntilAllExist: round((direct.existAt - t0) / 1000),
        secondsUntilAllReady: round((direct.readyAt - t0) / 1000),
        requestsPerSnapshot: round(directRequests / TOTAL),
      },
      policy: {
        secondsFromScheduledTimeUntilAllExist: round((scheduled.existAt - t1) / 1000),
        secondsFromScheduledTimeUntilAllReady: round((scheduled.readyAt - t1) / 1000),
        requestsPerSnapshot: round(policyRequests / TOTAL),
        policyControllerPeakRssMiB: ONE_PROCESS ? undefined : peakRssMiB(policyProc.pid),
      },
      stackPeakRssMiB: peakRssMiB(stack.pid),
      oneProcess: ONE_PROCESS,
      readyTimeRatioPolicyOverDirect: round((scheduled.readyAt - t1) / (direct.readyAt - t0)),
      requestRatioPolicyOverDirect: round(policyRequests / directRequests),
    };
    console.log(JSON.stringify(summary, null, 2));
    if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify(summary, null, 2));
  } finally {
    await processes.stopAll();
    await controlPlane.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

await main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
