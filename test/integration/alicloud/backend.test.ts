import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { Snapshot } from '../../../src/driver/backend.js';
import { DiskError, isDiskError } from '../../../src/csi/errors.js';
import { createAlicloudBackend } from '../../../src/driver/backends/alicloud/index.js';
import type { EcsEmulator } from '../../support/ecs-emulator/emulator.js';
import { waitFor } from '../../support/processes.js';
import { repoRoot } from '../../support/tools.js';
import {
  accessKeyId,
  accessKeySecret,
  backendFor,
  capturingLogger,
  createReadySnapshot,
  diskAvailable,
  region,
  snapshotRequest,
  sourceDisk,
  startEmulator,
  zone,
  type BackendSetup,
} from './harness.js';

const GiB = 2 ** 30;

async function failure(promise: Promise<unknown>): Promise<DiskError> {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(DiskError);
    return error as DiskError;
  }
  throw new Error('the call succeeded');
}

function restoreRequest(name: string, snapshotId: string, requiredBytes = 0) {
  return {
    name,
    requiredBytes,
    limitBytes: 0,
    parameters: { type: 'cloud_essd', performanceLevel: 'PL0' },
    metadata: {},
    capabilities: [],
    source: { kind: 'snapshot' as const, snapshotId },
  };
}

describe('alicloud backend against the ECS emulator', function () {
  this.timeout(60_000);
  let emulator: EcsEmulator;
  let setup: BackendSetup;

  beforeEach(async function () {
    emulator = await startEmulator();
    setup = backendFor(emulator);
  });

  afterEach(async function () {
    await setup?.close();
    await emulator?.stop();
  });

  it('creates one ECS snapshot per name, tagged, sized from the source disk, and reports readiness', async function () {
    const disk = sourceDisk(emulator, 40);
    const request = {
      ...snapshotRequest('snapshot-3f6c0a52-0000-4000-8000-000000000001', disk, true),
      parameters: { retentionDays: '7', 'snapshotTags/team': 'db' },
      metadata: {
        'csi.storage.k8s.io/volumesnapshot/name': 'daily',
        'csi.storage.k8s.io/volumesnapshot/namespace': 'prod',
      },
    };
    const first = await setup.backend.createSnapshot(request);
    const ready = await createReadySnapshot(setup.backend, request);
    expect(ready.id).to.equal(first.id);
    expect(ready).to.include({ sourceVolumeId: disk, sizeBytes: 40 * GiB, readyToUse: true });
    expect(emulator.callCount('CreateSnapshot')).to.equal(1);
    const stored = emulator.model.snapshots.get(first.id)!;
    expect(stored.name).to.equal(request.name);
    expect(stored.retentionDays).to.equal(7);
    expect(Object.fromEntries(stored.tags.map((t) => [t.key, t.value]))).to.deep.equal({
      createdby: 'snapback',
      'ack.aliyun.com': 'c-test',
      'force.delete.snapshot.k8s.aliyun.com': 'true',
      'csi.alibabacloud.com/snapshot/name': 'daily',
      'csi.alibabacloud.com/snapshot/namespace': 'prod',
      team: 'db',
    });
    const conflict = await failure(
      setup.backend.createSnapshot({ ...request, sourceVolumeId: sourceDisk(emulator) }),
    );
    expect(conflict.code).to.equal('ALREADY_EXISTS');
  });

  it('makes no duplicate snapshot when CreateSnapshot is retried after a timeout, nor after a restart', async function () {
    await setup.close();
    setup = backendFor(emulator, { requestTimeoutMs: 400 });
    const disk = sourceDisk(emulator);
    // ECS makes the snapshot but answers too late: the client times out and retries.
    emulator.faults.delay({ ms: 1500, phase: 'after', actions: ['CreateSnapshot'], count: 1 });
    const request = snapshotRequest('snapshot-timeout-1', disk);
    const first = await setup.backend.createSnapshot(request);
    expect(emulator.callCount('CreateSnapshot')).to.equal(2);
    expect(emulator.faults.injected.delayed).to.equal(1);
    expect(emulator.model.snapshots.size).to.equal(1);
    // A restarted driver knows nothing of the first call; the ClientToken does.
    await setup.close();
    setup = backendFor(emulator);
    const again = await createReadySnapshot(setup.backend, request);
    expect(again.id).to.equal(first.id);
    expect(emulator.model.snapshots.size).to.equal(1);
  });

  it('takes snapshots of one disk one after another, never colliding in ECS', async function () {
    const disk = sourceDisk(emulator);
    const snapshots = await Promise.all(
      [1, 2, 3].map((i) =>
        setup.backend.createSnapshot(snapshotRequest(`snapshot-serial-${i}`, disk)),
      ),
    );
    expect(new Set(snapshots.map((s) => s.id)).size).to.equal(3);
    const refused = emulator.calls.filter((c) => c.code === 'IncorrectDiskStatus.CreatingSnapshot');
    expect(refused).to.have.length(0);
    const requested = snapshots
      .map((s) => emulator.model.snapshots.get(s.id)!)
      .sort((a, b) => a.requestedAt - b.requestedAt);
    for (let i = 1; i < requested.length; i++) {
      expect(requested[i]!.requestedAt).to.be.at.least(requested[i - 1]!.accomplishedAt);
    }
  });

  describe('DeleteSnapshot and forceDelete', function () {
    type Dependent = 'none' | 'available' | 'creating';
    const cases: [boolean, Dependent, 'deleted' | 'refused'][] = [
      [false, 'none', 'deleted'],
      [false, 'available', 'refused'],
      [false, 'creating', 'refused'],
      [true, 'none', 'deleted'],
      [true, 'available', 'deleted'],
      [true, 'creating', 'refused'],
    ];

    for (const [forceDelete, dependent, outcome] of cases) {
      it(`forceDelete=${forceDelete}, dependent disk ${dependent}: ${outcome}`, async function () {
        const snapshot = await createReadySnapshot(
          setup.backend,
          snapshotRequest(
            `snapshot-matrix-${forceDelete}-${dependent}`,
            sourceDisk(emulator),
            forceDelete,
          ),
        );
        let diskId: string | undefined;
        if (dependent !== 'none') {
          emulator.model.holdDiskCreation = dependent === 'creating';
          diskId = (
            await setup.backend.createVolume(restoreRequest(`pvc-${dependent}`, snapshot.id))
          ).id;
          if (dependent === 'available') await diskAvailable(emulator, diskId);
          else
            expect(emulator.model.diskStatus(emulator.model.disks.get(diskId)!)).to.equal(
              'Creating',
            );
        }
        if (outcome === 'deleted') {
          await setup.backend.deleteSnapshot(snapshot.id);
          expect(emulator.model.snapshots.has(snapshot.id)).to.equal(false);
          const deleteCall = emulator.calls.find((c) => c.action === 'DeleteSnapshot');
          expect(deleteCall?.status).to.equal(200);
          return;
        }
        const error = await failure(setup.backend.deleteSnapshot(snapshot.id));
        expect(error.code).to.equal('FAILED_PRECONDITION');
        expect(error.message).to.include(diskId!);
        expect(error.message).to.include(
          dependent === 'creating' ? 'being created' : 'forceDelete',
        );
        expect(emulator.model.snapshots.has(snapshot.id)).to.equal(true);
        expect(emulator.callCount('DeleteSnapshot')).to.equal(0);
        if (dependent === 'creating') {
          emulator.model.releaseDisks();
          if (forceDelete) {
            await setup.backend.deleteSnapshot(snapshot.id);
            expect(emulator.model.snapshots.has(snapshot.id)).to.equal(false);
          } else {
            expect((await failure(setup.backend.deleteSnapshot(snapshot.id))).message).to.include(
              'forceDelete',
            );
          }
        }
      });
    }

    it('finds dependents over several DescribeDisks pages and names them all', async function () {
      const snapshot = await createReadySnapshot(
        setup.backend,
        snapshotRequest('snapshot-many', sourceDisk(emulator)),
      );
      const dependents = Array.from(
        { length: 120 },
        () =>
          emulator.model.addDisk({
            regionId: region,
            zoneId: zone,
            sizeGiB: 20,
            sourceSnapshotId: snapshot.id,
          }).id,
      );
      const error = await failure(setup.backend.deleteSnapshot(snapshot.id));
      for (const id of dependents) expect(error.message).to.include(id);
      const describeCalls = emulator.calls.filter((c) => c.action === 'DescribeDisks');
      expect(describeCalls.length).to.be.at.least(2);
    });

    it('treats an absent snapshot as deleted, and maps an image dependency', async function () {
      await setup.backend.deleteSnapshot('s-doesnotexist0000000');
      await setup.backend.deleteSnapshot('not-even-an-id');
      const snapshot = await createReadySnapshot(
        setup.backend,
        snapshotRequest('snapshot-image', sourceDisk(emulator)),
      );
      emulator.model.markUsedByImage(snapshot.id);
      const error = await failure(setup.backend.deleteSnapshot(snapshot.id));
      expect(error.code).to.equal('FAILED_PRECONDITION');
      expect(error.message).to.include('SnapshotCreatedImage');
      expect(error.message).to.include('custom image');
    });

    it('reports a disk created between the dependents check and the delete (SnapshotCreatedDisk)', async function () {
      await setup.close();
      let racing: string | undefined;
      setup = backendFor(emulator, {
        wrap: (api) => ({
          ...api,
          createSnapshot: (i) => api.createSnapshot(i),
          describeSnapshots: (i) => api.describeSnapshots(i),
          deleteSnapshot: (i) => api.deleteSnapshot(i),
          createDisk: (i) => api.createDisk(i),
          deleteDisk: (i) => api.deleteDisk(i),
          resizeDisk: (i) => api.resizeDisk(i),
          async describeDisks(input) {
            const page = await api.describeDisks(input);
            if (input.snapshotId && !racing) {
              racing = emulator.model.addDisk({
                regionId: region,
                zoneId: zone,
                sizeGiB: 20,
                sourceSnapshotId: input.snapshotId,
              }).id;
            }
            return page;
          },
        }),
      });
      const snapshot = await createReadySnapshot(
        setup.backend,
        snapshotRequest('snapshot-race', sourceDisk(emulator), true),
      );
      const error = await failure(setup.backend.deleteSnapshot(snapshot.id));
      expect(error.code).to.equal('FAILED_PRECONDITION');
      expect(error.message).to.include('SnapshotCreatedDisk');
      expect(emulator.model.snapshots.has(snapshot.id)).to.equal(true);
    });
  });

  describe('CreateVolume', function () {
    let snapshot: Snapshot;

    beforeEach(async function () {
      snapshot = await createReadySnapshot(
        setup.backend,
        snapshotRequest('snapshot-restore', sourceDisk(emulator, 30)),
      );
    });

    it('restores with the StorageClass parameters, the source size and the zone topology', async function () {
      const volume = await setup.backend.createVolume({
        ...restoreRequest('pvc-params', snapshot.id),
        parameters: {
          type: 'cloud_essd',
          performanceLevel: 'PL1',
          zoneId: 'cn-hangzhou-i',
          encrypted: 'true',
          kmsKeyId: 'key-123',
          resourceGroupId: 'rg-abc',
          diskTags: 'app:mysql',
        },
        metadata: { 'csi.storage.k8s.io/pvc/name': 'data-mysql-0' },
      });
      expect(volume.capacityBytes).to.equal(30 * GiB);
      expect(volume.accessibleTopology).to.deep.equal([
        { 'topology.diskplugin.csi.alibabacloud.com/zone': 'cn-hangzhou-i' },
      ]);
      expect(volume.source).to.deep.equal({ kind: 'snapshot', snapshotId: snapshot.id });
      const disk = emulator.model.disks.get(volume.id)!;
      expect(disk).to.include({
        category: 'cloud_essd',
        performanceLevel: 'PL1',
        zoneId: 'cn-hangzhou-i',
        sizeGiB: 30,
        encrypted: true,
        kmsKeyId: 'key-123',
        resourceGroupId: 'rg-abc',
        sourceSnapshotId: snapshot.id,
      });
      expect(disk.tags).to.deep.include({ key: 'app', value: 'mysql' });
      expect(disk.tags).to.deep.include({
        key: 'kubernetes.io/created-for/pvc/name',
        value: 'data-mysql-0',
      });
      expect((await setup.backend.getVolume(volume.id))?.capacityBytes).to.equal(30 * GiB);
    });

    it('is idempotent by name and refuses the same name with another size', async function () {
      const first = await setup.backend.createVolume(
        restoreRequest('pvc-same', snapshot.id, 30 * GiB),
      );
      const again = await setup.backend.createVolume(
        restoreRequest('pvc-same', snapshot.id, 30 * GiB),
      );
      expect(again.id).to.equal(first.id);
      expect(emulator.model.disks.size).to.equal(2);
      const conflict = await failure(
        setup.backend.createVolume(restoreRequest('pvc-same', snapshot.id, 50 * GiB)),
      );
      expect(conflict.code).to.equal('ALREADY_EXISTS');
    });

    it('refuses a size below the snapshot, an unknown snapshot, and an unusable category size', async function () {
      expect(
        (
          await failure(
            setup.backend.createVolume(restoreRequest('pvc-small', snapshot.id, 10 * GiB)),
          )
        ).code,
      ).to.equal('OUT_OF_RANGE');
      expect(
        (
          await failure(
            setup.backend.createVolume(restoreRequest('pvc-none', 's-0000000000000000000')),
          )
        ).code,
      ).to.equal('NOT_FOUND');
      const tooSmall = await failure(
        setup.backend.createVolume({
          ...restoreRequest('pvc-pl3', snapshot.id),
          limitBytes: 100 * GiB,
          parameters: { type: 'cloud_essd', performanceLevel: 'PL3' },
        }),
      );
      expect(tooSmall.code).to.equal('OUT_OF_RANGE');
      expect(emulator.callCount('CreateDisk')).to.equal(0);
    });

    it('deletes a disk that is still being created once it is ready, and an absent one at once', async function () {
      emulator.model.holdDiskCreation = true;
      const volume = await setup.backend.createVolume(restoreRequest('pvc-delete', snapshot.id));
      setTimeout(() => emulator.model.releaseDisks(), 600);
      await setup.backend.deleteVolume(volume.id);
      expect(emulator.model.disks.has(volume.id)).to.equal(false);
      expect(emulator.calls.some((c) => c.code === 'IncorrectDiskStatus.Initializing')).to.equal(
        true,
      );
      await setup.backend.deleteVolume(volume.id);
    });
  });

  it('converges with 20% injected 5xx and throttling bursts, making every snapshot exactly once', async function () {
    await setup.close();
    setup = backendFor(emulator, { requestTimeoutMs: 2000 });
    emulator.faults.failRandomly({ rate: 0.2, phase: 'either', seed: 42 });
    // Every 2 s ECS throttles every API for 400 ms, saying how long every other time.
    let burst = 0;
    const throttleBurst = () => {
      burst += 1;
      emulator.faults.throttleFor({ action: '*', ms: 400, sendRetryAfter: burst % 2 === 1 });
    };
    throttleBurst();
    const bursts = setInterval(throttleBurst, 2000);
    try {
      const disks = Array.from({ length: 30 }, () => sourceDisk(emulator));
      const names = disks.map((_, i) => `snapshot-chaos-${i}`);
      const snapshots = await Promise.all(
        names.map((name, i) =>
          createReadySnapshot(setup.backend, snapshotRequest(name, disks[i]!), 45_000),
        ),
      );
      expect(new Set(snapshots.map((s) => s.id)).size).to.equal(30);
      expect(emulator.model.snapshots.size).to.equal(30);
      for (const [i, s] of snapshots.entries())
        expect(emulator.model.snapshots.get(s.id)?.sourceDiskId).to.equal(disks[i]);
      await Promise.all(
        snapshots.map((s) =>
          waitFor(
            () =>
              setup.backend.deleteSnapshot(s.id).then(
                () => true,
                (error: unknown) => {
                  if (isDiskError(error, 'UNAVAILABLE')) return false;
                  throw error;
                },
              ),
            45_000,
            `snapshot ${s.id} to be deleted`,
          ),
        ),
      );
      expect(emulator.model.snapshots.size).to.equal(0);
      const { injected } = emulator.faults;
      expect(injected.serverErrorsBefore, 'requests failed before ECS acted').to.be.greaterThan(0);
      expect(injected.serverErrorsAfter, 'requests failed after ECS acted').to.be.greaterThan(0);
      expect(injected.throttled, 'throttled requests').to.be.greaterThan(0);
      const lostReplies = emulator.calls.filter(
        (c) => c.action === 'CreateSnapshot' && c.status >= 500 && c.applied,
      );
      expect(
        lostReplies.length,
        'CreateSnapshot calls ECS carried out but answered with 5xx',
      ).to.be.greaterThan(0);
      const logs = setup.logs.join('');
      expect(logs).to.include('ECS call failed, retrying');
      expect(logs).to.not.include(accessKeySecret);
      expect(logs).to.not.include(accessKeyId);
    } finally {
      clearInterval(bursts);
      emulator.faults.clear();
    }
  });

  describe('start-up', function () {
    const flags = () => ({
      region,
      zone,
      'ecs-endpoint': emulator.endpoint,
      'ecs-protocol': 'http',
      credentials: 'env',
    });

    it('stops with a clear reason when ECS rejects the request signature, without quoting the secret', async function () {
      const wrongSecret = 'this-is-the-wrong-secret';
      const { logger, lines } = capturingLogger();
      const error = await createAlicloudBackend({
        nodeId: undefined,
        flags: flags(),
        env: {
          ALIBABA_CLOUD_ACCESS_KEY_ID: accessKeyId,
          ALIBABA_CLOUD_ACCESS_KEY_SECRET: wrongSecret,
        },
        logger,
      }).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(error?.message).to.include('SignatureDoesNotMatch');
      expect(error?.message).to.include('check that the access key secret');
      expect(error?.message).to.not.include(wrongSecret);
      expect(lines.join('')).to.not.include(wrongSecret);
      expect(emulator.calls.map((c) => c.code)).to.deep.equal(['SignatureDoesNotMatch']);
    });

    it('`snapback driver` exits with the reason on its last line when the secret is wrong', async function () {
      this.timeout(180_000);
      const wrongSecret = 'cli-wrong-secret';
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx/esm',
          path.join(repoRoot, 'src/cli/main.ts'),
          'driver',
          '--backend=alicloud',
          `--endpoint=unix://${path.join(os.tmpdir(), `snapback-alicloud-${process.pid}.sock`)}`,
          `--region=${region}`,
          `--zone=${zone}`,
          `--ecs-endpoint=${emulator.endpoint}`,
          '--ecs-protocol=http',
        ],
        {
          env: {
            ...process.env,
            ALIBABA_CLOUD_ACCESS_KEY_ID: accessKeyId,
            ALIBABA_CLOUD_ACCESS_KEY_SECRET: wrongSecret,
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code).to.equal(1);
      const last = output.trim().split('\n').pop() ?? '';
      expect(last).to.match(
        /^snapback driver: checking access to ECS in cn-hangzhou: ECS DescribeDisks failed with SignatureDoesNotMatch/,
      );
      expect(output).to.not.include(wrongSecret);
    });

    it('starts with credentials from the environment and serves', async function () {
      const { logger } = capturingLogger();
      const backend = await createAlicloudBackend({
        nodeId: undefined,
        flags: flags(),
        env: {
          ALIBABA_CLOUD_ACCESS_KEY_ID: accessKeyId,
          ALIBABA_CLOUD_ACCESS_KEY_SECRET: accessKeySecret,
        },
        logger,
      });
      try {
        expect(backend.driverName).to.equal('diskplugin.csi.alibabacloud.com');
        expect(await backend.probe()).to.equal(true);
        expect(emulator.callCount('DescribeDisks', { succeeded: true })).to.equal(1);
      } finally {
        await backend.close();
      }
    });

    it('names what is missing in the configuration', async function () {
      const error = await createAlicloudBackend({
        nodeId: undefined,
        flags: { credentials: 'env' },
        env: {},
        logger: capturingLogger().logger,
      }).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(error?.message).to.include('the ECS region is required (--region');
      expect(error?.message).to.include('the default zone is required (--zone');
    });
  });
});
