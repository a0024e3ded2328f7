import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { expect } from 'chai';
import type * as k8s from '@kubernetes/client-node';
import winston from 'winston';
import type { VolumeSnapshot } from '../../../src/api/snapshot.js';
import { stackOptions, startStack, type Stack } from '../../../src/cli/controller.js';
import { HttpKubeClient, Leases, type Lease } from '../../../src/kube/index.js';
import { VolumeSnapshots } from '../../../src/kube/resource.js';
import type { ControlPlane } from '../../support/control-plane.js';
import {
  createTestNamespace,
  deleteTestNamespace,
  kubeConfigFor,
  sharedControlPlane,
} from '../../support/cluster.js';
import { waitFor } from '../../support/processes.js';
import { installSnapshotCrds, startUpstream, type Started } from '../stack/support.js';

const TIMEOUT = 60_000;

/** A winston JSON logger whose lines land in `lines`. */
function capturingLogger(lines: Array<Record<string, unknown>>): winston.Logger {
  return winston.createLogger({
    format: winston.format.json(),
    transports: [
      new winston.transports.Stream({
        stream: new Writable({
          write(chunk: Buffer, _encoding, done) {
            lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
            done();
          },
        }),
      }),
    ],
  });
}

/** metav1.MicroTime, as client-go writes it. */
const microTime = (ms: number) => new Date(ms).toISOString().replace(/Z$/, '000Z');

describe('co-existing with upstream snapshot-controller (real control plane)', function () {
  let controlPlane: ControlPlane;
  let kc: k8s.KubeConfig;
  let client: HttpKubeClient;
  let namespace: string;
  let stack: Stack | undefined;
  let upstream: Started | undefined;
  let dir: string | undefined;
  const logLines: Array<Record<string, unknown>> = [];

  before(async function () {
    controlPlane = await sharedControlPlane();
    kc = kubeConfigFor(controlPlane);
    client = new HttpKubeClient(kc, { qps: 100, burst: 100 });
    await installSnapshotCrds(controlPlane);
    namespace = await createTestNamespace(kc, 'coexist');
  });

  afterEach(async function () {
    await stack?.stop();
    stack = undefined;
    await upstream?.stop();
    upstream = undefined;
  });

  after(async function () {
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (!client || !namespace) return;
    for (const snapshot of (await client.list<VolumeSnapshot>(VolumeSnapshots, { namespace }))
      .items) {
      await client
        .patch(VolumeSnapshots, snapshot.metadata.name!, namespace, 'merge', {
          metadata: { finalizers: null },
        })
        .catch(() => undefined);
    }
    await deleteTestNamespace(kc, namespace);
  });

  it('does not act while the upstream Lease is held, says why, and acts once it expired', async function () {
    this.timeout(3 * TIMEOUT);
    // upstream snapshot-controller leading from its namespace, as csi-lib-utils holds the Lease
    const renewedAt = Date.now();
    await client.create<Lease>(Leases, {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'snapshot-controller-leader', namespace },
      spec: {
        holderIdentity: 'snapshot-controller-5d4f9c7b8-x2kqj',
        leaseDurationSeconds: 15,
        acquireTime: microTime(renewedAt),
        renewTime: microTime(renewedAt),
        leaseTransitions: 0,
      },
    });
    // a VolumeSnapshot our snapshot controller would take up at once (status, finalizers)
    await client.create<VolumeSnapshot>(VolumeSnapshots, {
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshot',
      metadata: { name: 'left-to-upstream', namespace },
      spec: { source: { persistentVolumeClaimName: 'data' } },
    });
    const created = (await client.get<VolumeSnapshot>(
      VolumeSnapshots,
      'left-to-upstream',
      namespace,
    ))!;

    const logger = capturingLogger(logLines);
    const options = stackOptions(
      {
        kubeconfig: controlPlane.kubeconfig,
        policy: 'false',
        'csi-snapshotter': 'false',
        'csi-provisioner': 'false',
        'leader-election': 'false',
        'http-endpoint': '127.0.0.1:0',
        'upstream-check-period': '500ms',
        'retry-interval-start': '100ms',
      },
      {},
      logger,
    );
    stack = await startStack(options);
    const status = () => stack!.coexistence()[0]!;
    const snapshotNow = () =>
      client.get<VolumeSnapshot>(VolumeSnapshots, 'left-to-upstream', namespace);

    await waitFor(
      () => status().state === 'deferring',
      TIMEOUT,
      'the snapshot controller to defer to upstream',
      () => JSON.stringify(status()),
    );
    const why =
      `snapshot-controller runs in this cluster: Lease ${namespace}/snapshot-controller-leader ` +
      'is held by "snapshot-controller-5d4f9c7b8-x2kqj"';
    expect(status().message).to.contain(why);
    const warnings = logLines.filter((line) => String(line.message).includes(why));
    expect(warnings, 'one clear log line').to.have.length(1);
    expect(warnings[0]!.level).to.equal('warn');
    const readyz = await (await fetch(`${stack.healthUrl}/readyz`)).text();
    expect(readyz).to.contain(`[+]upstream-snapshot-controller ${why}`);
    const metrics = await (await fetch(`${stack.healthUrl}/metrics`)).text();
    expect(metrics).to.match(
      /snapback_embedded_part_deferred\{part="snapshot-controller",upstream="snapshot-controller"\} 1/,
    );

    // several checks later (one each 500 ms), the snapshot is still exactly as the user made it
    await waitFor(
      () => status().state === 'deferring' && Date.now() - renewedAt > 3_000,
      TIMEOUT,
      'three seconds of deferring',
      () => JSON.stringify(status()),
    );
    const untouched = (await snapshotNow())!;
    expect(untouched.metadata.resourceVersion, JSON.stringify(untouched)).to.equal(
      created.metadata.resourceVersion,
    );
    expect(untouched.metadata.finalizers ?? []).to.deep.equal([]);
    expect(untouched.status).to.equal(undefined);
    expect(
      logLines.filter((line) => String(line.message).includes(why)),
      'no repeated warning while deferring',
    ).to.have.length(1);

    // upstream stopped renewing: once the Lease's duration has passed, ours acts
    const held = (await client.get<Lease>(Leases, 'snapshot-controller-leader', namespace))!;
    await client.replace<Lease>(Leases, {
      ...held,
      spec: { ...held.spec, renewTime: microTime(Date.now() - 20_000) },
    });
    await waitFor(
      async () => {
        // with no PVC behind it, the snapshot controller reports the error on the snapshot
        const seen = await snapshotNow();
        return (seen?.metadata.finalizers ?? []).length > 0 || seen?.status?.error !== undefined;
      },
      TIMEOUT,
      'the snapshot controller to take up the VolumeSnapshot',
      async () => `${JSON.stringify(status())} ${JSON.stringify(await snapshotNow())}`,
    );
    expect(status().state).to.equal('acting');
    expect(logLines.map((line) => line.message)).to.include(
      `no snapshot-controller holds Lease "snapshot-controller-leader" (any namespace) any more; snapshot-controller acts`,
    );
    const after = await (await fetch(`${stack.healthUrl}/metrics`)).text();
    expect(after).to.match(
      /snapback_embedded_part_deferred\{part="snapshot-controller",upstream="snapshot-controller"\} 0/,
    );
  });

  it("defers to a real upstream snapshot-controller's Lease, and acts once it is gone", async function () {
    this.timeout(3 * TIMEOUT);
    dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-coexist-'));
    const leaseNamespace = await createTestNamespace(kc, 'upstream');
    try {
      upstream = startUpstream(
        'SNAPSHOT_CONTROLLER',
        [
          `--kubeconfig=${controlPlane.kubeconfig}`,
          '--leader-election',
          `--leader-election-namespace=${leaseNamespace}`,
        ],
        path.join(dir, 'snapshot-controller.log'),
      );
      const upstreamLease = () =>
        client.get<Lease>(Leases, 'snapshot-controller-leader', leaseNamespace);
      await waitFor(
        async () => !!(await upstreamLease())?.spec?.holderIdentity,
        TIMEOUT,
        `upstream snapshot-controller to hold Lease ${leaseNamespace}/snapshot-controller-leader`,
        () => upstream!.log().slice(-2000),
      );
      const lines: Array<Record<string, unknown>> = [];
      stack = await startStack(
        stackOptions(
          {
            kubeconfig: controlPlane.kubeconfig,
            policy: 'false',
            'csi-snapshotter': 'false',
            'csi-provisioner': 'false',
            'leader-election': 'false',
            'upstream-lease-namespaces': leaseNamespace,
            'upstream-check-period': '500ms',
          },
          {},
          capturingLogger(lines),
        ),
      );
      const status = () => stack!.coexistence()[0]!;
      await waitFor(
        () => status().state === 'deferring',
        TIMEOUT,
        'the snapshot controller to defer to the upstream one',
        () => JSON.stringify(status()),
      );
      const holder = (await upstreamLease())!.spec!.holderIdentity!;
      expect(status().message).to.contain(
        `Lease ${leaseNamespace}/snapshot-controller-leader is held by "${holder}"`,
      );

      // upstream stops (it releases the Lease, or the Lease runs out): ours acts then
      await upstream.stop();
      upstream = undefined;
      await waitFor(
        () => status().state === 'acting',
        TIMEOUT,
        'the snapshot controller to act after the upstream Lease expired',
        () => JSON.stringify(status()),
      );
    } finally {
      await deleteTestNamespace(kc, leaseNamespace);
    }
  });
});
