/**
 * The fault run: snapshot lifecycles (create a VolumeSnapshot, wait until it is ready, delete
 * it, wait until it and its content are gone) through the embedded stack while the operator's
 * processes are killed with SIGKILL at random moments and its leader is cut off from the API
 * server, then a count of what went wrong: snapshots lost (never ready), duplicated (a backend
 * snapshot left behind once every snapshot is gone) and stuck (objects still there).
 *
 * The stack: `snapback driver --backend=local` (the CSI driver) and two `snapback controller`
 * replicas (snapshot controller, csi-snapshotter, provisioner) with leader election, each
 * reaching the API server through a TCP proxy of this bench, so a partition is a proxy that
 * drops its connections and refuses new ones. A supervisor restarts every process that exits,
 * as kubelet would. Needs root (loop devices); run with `make bench BENCH=faults` or
 * `node --import tsx/esm bench/faults/run.ts [--lifecycles=200] [--pvcs=10] [--parallel=10]`
 * after `make build`.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import type { VolumeSnapshot } from '../../src/api/index.js';
import {
  HttpKubeClient,
  Leases,
  PersistentVolumeClaims,
  type KubeObject,
} from '../../src/kube/index.js';
import { VolumeSnapshotContents, VolumeSnapshots } from '../../src/kube/resource.js';
import { kubectl } from '../../test/support/cluster.js';
import {
  freePort,
  kubeconfigYaml,
  startControlPlane,
  type ControlPlane,
} from '../../test/support/control-plane.js';
import { isAlive, killQuietly, sleep, waitFor } from '../../test/support/processes.js';
import { tool } from '../../test/support/tools.js';
import { installSnapshotCrds } from '../../test/integration/stack/support.js';
import {
  BenchProcesses,
  createLocalClasses,
  inParallel,
  numberFlag,
  provisionPvcs,
  snapbackMain,
  type BenchProcess,
} from '../support.js';

const LIFECYCLES = numberFlag('lifecycles', 200);
const PVCS = numberFlag('pvcs', 10);
const PARALLEL = numberFlag('parallel', 10);
/** Mean seconds between two kills. */
const KILL_EVERY_S = numberFlag('kill-every', 6);
/** How long the leader is cut off: longer than a lease (15 s), so it must lose it. */
const PARTITION_S = numberFlag('partition', 25);
const DEADLINE_MS = 300_000;
const NAMESPACE = 'faults';
const LEASE = 'snapback-faults';

/** A TCP proxy to the API server that can drop every connection and refuse new ones. */
class Link {
  private readonly sockets = new Set<net.Socket>();
  private cut = false;
  private server?: net.Server;
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async start(): Promise<void> {
    this.port = await freePort();
    this.server = net.createServer((client) => {
      if (this.cut) {
        client.destroy();
        return;
      }
      const upstream = net.connect(this.target.port, this.target.host);
      for (const [a, b] of [
        [client, upstream],
        [upstream, client],
      ] as const) {
        a.pipe(b);
        a.on('error', () => b.destroy());
        a.on('close', () => b.destroy());
        this.sockets.add(a);
        a.on('close', () => this.sockets.delete(a));
      }
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
  }

  partition(): void {
    this.cut = true;
    for (const socket of this.sockets) socket.destroy();
  }

  heal(): void {
    this.cut = false;
  }

  close(): void {
    this.partition();
    this.server?.close();
  }
}

interface Figures {
  controllerKills: number;
  driverKills: number;
  partitions: number;
  restarts: number;
  leaderExitsAfterPartition: number;
  lifecycleSeconds: number[];
  lost: string[];
  stuck: string[];
  leftoverBackendSnapshots: string[];
  leftoverBackendVolumes: string[];
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the local backend needs root (loop devices)');
  const snapback = snapbackMain();
  const work = mkdtempSync(path.join(os.tmpdir(), 'snapback-faults-'));
  const procs = new BenchProcesses(work);
  const controlPlane: ControlPlane = await startControlPlane();
  const links: Link[] = [];
  let supervising = true;
  const figures: Figures = {
    controllerKills: 0,
    driverKills: 0,
    partitions: 0,
    restarts: 0,
    leaderExitsAfterPartition: 0,
    lifecycleSeconds: [],
    lost: [],
    stuck: [],
    leftoverBackendSnapshots: [],
    leftoverBackendVolumes: [],
  };
  try {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(controlPlane.kubeconfig);
    const client = new HttpKubeClient(kc, { qps: 200, burst: 400 });
    await installSnapshotCrds(controlPlane);
    await kubectl(controlPlane, ['create', 'namespace', NAMESPACE]);
    await createLocalClasses(client);

    const socket = path.join(work, 'csi.sock');
    const root = path.join(work, 'disks');
    const env = {
      ...process.env,
      SNAPBACK_CSI_PROTO: tool('CSI_PROTO'),
      SNAPBACK_LOG_LEVEL: 'info',
    };
    const server = new URL(controlPlane.state.server);
    const ca = readFileSync(path.join(controlPlane.state.dir, 'certs', 'apiserver.crt'));

    const startDriver = () =>
      procs.spawn(
        `driver-${Date.now()}`,
        process.execPath,
        [
          snapback,
          'driver',
          '--backend=local',
          `--root=${root}`,
          '--node-id=faults',
          `--endpoint=unix://${socket}`,
          `--kubelet-dir=${work}`,
        ],
        env,
      );
    const startController = (replica: number) => {
      const kubeconfig = path.join(work, `replica-${replica}.kubeconfig`);
      writeFileSync(
        kubeconfig,
        kubeconfigYaml(`https://127.0.0.1:${links[replica]!.port}`, ca, controlPlane.state.token),
      );
      return procs.spawn(
        `controller-${replica}-${Date.now()}`,
        process.execPath,
        [
          snapback,
          'controller',
          `--kubeconfig=${kubeconfig}`,
          `--csi-address=unix://${socket}`,
          '--policy=false',
          '--leader-election=true',
          `--leader-election-namespace=${NAMESPACE}`,
          `--leader-election-name=${LEASE}`,
          `--leader-election-identity=replica-${replica}`,
        ],
        env,
      );
    };
    for (let replica = 0; replica < 2; replica++) {
      const link = new Link({ host: server.hostname, port: Number(server.port) });
      await link.start();
      links.push(link);
    }
    const running: { driver: BenchProcess; controllers: BenchProcess[] } = {
      driver: startDriver(),
      controllers: [startController(0), startController(1)],
    };
    // the supervisor: an exited process is started again a second later, as kubelet would
    const supervisor = (async () => {
      while (supervising) {
        await sleep(1_000);
        if (!isAlive(running.driver.pid)) {
          running.driver = startDriver();
          figures.restarts++;
        }
        for (const replica of [0, 1]) {
          if (!isAlive(running.controllers[replica]!.pid)) {
            running.controllers[replica] = startController(replica);
            figures.restarts++;
          }
        }
      }
    })();

    const pvcs = Array.from({ length: PVCS }, (_, n) => ({ name: `source-${n}` }));
    await provisionPvcs(client, NAMESPACE, pvcs, () => '');
    console.log(`${PVCS} PVCs bound; ${LIFECYCLES} lifecycles, ${PARALLEL} at a time, with faults`);

    const leaderReplica = async (): Promise<number | undefined> => {
      const lease = await client
        .get<KubeObject & { spec?: { holderIdentity?: string } }>(Leases, LEASE, NAMESPACE)
        .catch(() => undefined);
      const holder = lease?.spec?.holderIdentity;
      return holder === 'replica-0' ? 0 : holder === 'replica-1' ? 1 : undefined;
    };

    let chaos = true;
    const chaosLoop = (async () => {
      let partitioned = false;
      const started = Date.now();
      while (chaos) {
        await sleep(Math.round(Math.random() * 2 * KILL_EVERY_S * 1000));
        if (!chaos) break;
        // once, a third of the way in: the leader loses the API server for longer than a lease
        if (!partitioned && Date.now() - started > 20_000) {
          partitioned = true;
          const leader = await leaderReplica();
          if (leader !== undefined) {
            const pid = running.controllers[leader]!.pid;
            console.log(`partition: replica-${leader} (pid ${pid}) cut off for ${PARTITION_S} s`);
            links[leader]!.partition();
            figures.partitions++;
            await sleep(PARTITION_S * 1000);
            if (!isAlive(pid)) figures.leaderExitsAfterPartition++;
            links[leader]!.heal();
          }
          continue;
        }
        if (Math.random() < 0.5) {
          killQuietly(running.driver.pid, 'SIGKILL');
          figures.driverKills++;
        } else {
          const replica = (await leaderReplica()) ?? (Math.random() < 0.5 ? 0 : 1);
          killQuietly(running.controllers[replica]!.pid, 'SIGKILL');
          figures.controllerKills++;
        }
      }
    })();

    const began = Date.now();
    await inParallel(
      Array.from({ length: LIFECYCLES }, (_, i) => i),
      PARALLEL,
      async (i) => {
        const name = `life-${i}`;
        const t0 = Date.now();
        await client.create(VolumeSnapshots, {
          apiVersion: 'snapshot.storage.k8s.io/v1',
          kind: 'VolumeSnapshot',
          metadata: { name, namespace: NAMESPACE },
          spec: {
            volumeSnapshotClassName: 'local',
            source: { persistentVolumeClaimName: `source-${i % PVCS}` },
          },
        } as KubeObject);
        const ready = await waitFor(
          async () =>
            (await client.get<VolumeSnapshot>(VolumeSnapshots, name, NAMESPACE))?.status
              ?.readyToUse,
          DEADLINE_MS,
          `${name} to be ready`,
        ).catch(() => false);
        if (!ready) figures.lost.push(name);
        const content = (await client.get<VolumeSnapshot>(VolumeSnapshots, name, NAMESPACE))?.status
          ?.boundVolumeSnapshotContentName;
        await client.delete(VolumeSnapshots, name, NAMESPACE).catch(() => undefined);
        const gone = await waitFor(
          async () =>
            !(await client.get(VolumeSnapshots, name, NAMESPACE)) &&
            (!content || !(await client.get(VolumeSnapshotContents, content))),
          DEADLINE_MS,
          `${name} and its content to be gone`,
        ).catch(() => false);
        if (ready && gone) figures.lifecycleSeconds.push((Date.now() - t0) / 1000);
      },
    );
    const seconds = (Date.now() - began) / 1000;
    chaos = false;
    await chaosLoop;

    // settle: every process up, then nothing may be left of the snapshots
    await sleep(5_000);
    const left = async () => [
      ...(await client.list<KubeObject>(VolumeSnapshots, { namespace: NAMESPACE })).items.map(
        (s) => `VolumeSnapshot ${s.metadata?.name}`,
      ),
      ...(await client.list<KubeObject>(VolumeSnapshotContents)).items.map(
        (c) => `VolumeSnapshotContent ${c.metadata?.name}`,
      ),
    ];
    await waitFor(
      async () => (await left()).length === 0,
      120_000,
      'no snapshot object left',
    ).catch(() => undefined);
    figures.stuck = await left();
    const backendSnapshots = () =>
      existsSync(path.join(root, 'snapshots'))
        ? readdirSync(path.join(root, 'snapshots')).filter((f) => f.endsWith('.json'))
        : [];
    figures.leftoverBackendSnapshots = backendSnapshots();

    // and the source volumes go with their PVCs: no orphaned disk either
    for (const { name } of pvcs) await client.delete(PersistentVolumeClaims, name, NAMESPACE);
    const disks = () =>
      existsSync(path.join(root, 'disks'))
        ? readdirSync(path.join(root, 'disks')).filter((f) => f.endsWith('.json'))
        : [];
    await waitFor(() => disks().length === 0, 120_000, 'the disks to be deleted').catch(
      () => undefined,
    );
    figures.leftoverBackendVolumes = disks();

    supervising = false;
    await supervisor;
    report(figures, seconds);
    const bad =
      figures.lost.length +
      figures.stuck.length +
      figures.leftoverBackendSnapshots.length +
      figures.leftoverBackendVolumes.length;
    if (bad > 0) process.exitCode = 1;
  } finally {
    supervising = false;
    await procs.stopAll().catch(() => undefined);
    for (const link of links) link.close();
    await controlPlane.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

function report(f: Figures, seconds: number): void {
  const rows: [string, string][] = [
    ['lifecycles', `${LIFECYCLES} (${PVCS} source PVCs, ${PARALLEL} at a time)`],
    ['time', `${seconds.toFixed(1)} s`],
    [
      'lifecycle p50 / p95',
      `${percentile(f.lifecycleSeconds, 50).toFixed(1)} s / ${percentile(f.lifecycleSeconds, 95).toFixed(1)} s`,
    ],
    ['SIGKILL of a controller replica (the leader when known)', String(f.controllerKills)],
    ['SIGKILL of the driver', String(f.driverKills)],
    ['leader partitioned from the API server', `${f.partitions} x ${PARTITION_S} s`],
    ['partitioned leader exited before the partition healed', String(f.leaderExitsAfterPartition)],
    ['process restarts by the supervisor', String(f.restarts)],
    ['lost (never ready)', String(f.lost.length)],
    ['stuck (objects left)', String(f.stuck.length)],
    ['duplicated (backend snapshots left)', String(f.leftoverBackendSnapshots.length)],
    ['orphaned backend volumes', String(f.leftoverBackendVolumes.length)],
  ];
  console.log('\n| figure | value |\n| --- | --- |');
  for (const [name, value] of rows) console.log(`| ${name} | ${value} |`);
  for (const [what, list] of [
    ['lost', f.lost],
    ['stuck', f.stuck],
    ['left backend snapshots', f.leftoverBackendSnapshots],
    ['left backend volumes', f.leftoverBackendVolumes],
  ] as const) {
    if (list.length > 0) console.log(`${what}: ${list.slice(0, 20).join(', ')}`);
  }
}

await main();
