/**
 * One snapback all-in-one under test (local backend) on the shared control plane: a test
 * namespace, the StorageClass and VolumeSnapshotClass named after it, the process, and a
 * "kubelet" that mounts through its CSI socket; torn down while the stack still runs, so what
 * the tests made is deleted by it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PersistentVolumes, type HttpKubeClient } from '../../../src/kube/index.js';
import type { ControlPlane } from '../../support/control-plane.js';
import { createTestNamespace, deleteTestNamespace, kubeConfigFor } from '../../support/cluster.js';
import { waitFor } from '../../support/processes.js';
import { createClasses, deleteClasses } from './recipe.js';
import { Kubelet, startSnapback, waitForSocket, type Started, type Volume } from './support.js';

/** One stack under test: a namespace, cluster-scoped classes, its processes and a kubelet. */
export class Rig {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-stack-'));
  readonly socket = path.join(this.dir, 'csi.sock');
  readonly processes: Started[] = [];
  namespace = '';
  kubelet: Kubelet | undefined;

  /** The all-in-one process, once set up. */
  get aio(): Started | undefined {
    return this.processes[0];
  }

  constructor(
    readonly controlPlane: ControlPlane,
    readonly client: HttpKubeClient,
  ) {}

  async setUp(prefix: string, allInOneArgs: string[]): Promise<void> {
    this.namespace = await createTestNamespace(kubeConfigFor(this.controlPlane), prefix);
    await createClasses(this.client, this.namespace, { forceDelete: false });
    this.allInOneArgs = [
      'all-in-one',
      '--backend=local',
      `--root=${path.join(this.dir, 'disks')}`,
      `--kubelet-dir=${path.join(this.dir, 'kubelet')}`,
      '--node-id=node-a',
      `--endpoint=unix://${this.socket}`,
      `--leader-election-namespace=${this.namespace}`,
      '--retry-interval-max=2s',
      ...allInOneArgs,
    ];
    await this.startAllInOne();
    this.kubelet = new Kubelet(this.socket, path.join(this.dir, 'kubelet'));
  }

  private allInOneArgs: string[] = [];

  private async startAllInOne(): Promise<void> {
    const aio = startSnapback(
      this.controlPlane,
      this.allInOneArgs,
      path.join(this.dir, 'all-in-one.log'),
    );
    this.processes.splice(0, 1, aio);
    await waitForSocket(this.socket, aio);
  }

  /**
   * Stops the all-in-one process (SIGKILL with `kill`, as a crash or an OOM kill would; else
   * SIGTERM) and starts it again with the same arguments and log file.
   */
  async restartAllInOne({ kill = false } = {}): Promise<void> {
    const aio = this.aio!;
    if (kill) aio.child.kill('SIGKILL');
    await aio.stop();
    await this.startAllInOne();
  }

  /** Unmounts, deletes what the tests made while the stack still runs, then stops it. */
  async tearDown(): Promise<void> {
    await this.kubelet?.cleanup().catch(() => undefined);
    if (this.namespace) {
      const pvs = async () =>
        (await this.client.list<Volume>(PersistentVolumes)).items.filter(
          (pv) => pv.spec?.storageClassName === this.namespace,
        );
      await deleteTestNamespace(kubeConfigFor(this.controlPlane), this.namespace);
      await waitFor(
        async () => (await pvs()).length === 0,
        120_000,
        'the test PVs to be deleted',
        async () =>
          JSON.stringify((await pvs()).map((pv) => [pv.metadata?.name, pv.status?.phase])),
      ).catch(() => undefined);
      await deleteClasses(this.client, this.namespace);
    }
    for (const process of this.processes.reverse()) await process.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  logs(): string {
    return this.processes.map((p) => `--- ${p.logFile}\n${p.log().slice(-4000)}`).join('\n');
  }
}
