import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { connectCsi, type CsiClient } from '../../../src/csi/client.js';
import { isGrpcError } from '../../../src/csi/status.js';
import { startDriver, type DriverHandle } from '../../../src/driver/driver.js';
import { DiskError } from '../../../src/csi/errors.js';
import { tool } from '../../support/tools.js';
import { FakeBackend } from './fake-backend.js';

const mount = {
  mount: { fs_type: 'ext4', mount_flags: [] },
  access_mode: { mode: 'SINGLE_NODE_WRITER' as const },
};

async function codeOf(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (error) {
    if (isGrpcError(error)) return grpc.status[error.code];
    throw error;
  }
  return 'OK';
}

describe('driver: CSI services over gRPC (in-memory backend)', function () {
  let dir: string;
  let backend: FakeBackend;
  let driver: DriverHandle;
  let client: CsiClient;

  beforeEach(async function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-services-'));
    backend = new FakeBackend();
    driver = await startDriver({
      backend,
      endpoint: `unix://${dir}/csi.sock`,
      protoPath: tool('CSI_PROTO'),
    });
    client = connectCsi(`unix://${dir}/csi.sock`, {
      protoPath: tool('CSI_PROTO'),
      timeoutMs: 10_000,
    });
  });

  afterEach(async function () {
    client.close();
    await driver.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves on a socket only its owner and group may use, and removes it on stop', async function () {
    expect(statSync(driver.socket).mode & 0o777).to.equal(0o660);
    await driver.stop();
    expect(() => statSync(driver.socket)).to.throw(/ENOENT/);
    expect(backend.closed).to.equal(true);
  });

  it("reports the backend's name, version, capabilities and readiness", async function () {
    const info = await client.identity.getPluginInfo({});
    expect(info).to.deep.include({ name: 'fake.snapback.dev', vendor_version: '0.0.1' });
    const plugin = await client.identity.getPluginCapabilities({});
    expect(plugin.capabilities.map((c) => c.service?.type)).to.deep.equal(['CONTROLLER_SERVICE']);
    expect((await client.identity.probe({})).ready?.value).to.equal(true);
    backend.ready = false;
    expect((await client.identity.probe({})).ready?.value).to.equal(false);
    const controller = await client.controller.controllerGetCapabilities({});
    expect(controller.capabilities.map((c) => c.rpc?.type)).to.have.members([
      'CREATE_DELETE_VOLUME',
      'LIST_VOLUMES',
      'GET_VOLUME',
      'CREATE_DELETE_SNAPSHOT',
      'LIST_SNAPSHOTS',
    ]);
  });

  it('answers RPCs whose capability is not offered with UNIMPLEMENTED', async function () {
    expect(
      await codeOf(client.controller.controllerPublishVolume({ volume_id: 'v', node_id: 'n' })),
    ).to.equal('UNIMPLEMENTED');
    expect(await codeOf(client.controller.getCapacity({}))).to.equal('UNIMPLEMENTED');
    expect(await codeOf(client.node.nodeGetInfo({}))).to.equal('UNIMPLEMENTED');
  });

  it('refuses requests missing required fields with INVALID_ARGUMENT, before the backend sees them', async function () {
    expect(await codeOf(client.controller.createVolume({ volume_capabilities: [mount] }))).to.equal(
      'INVALID_ARGUMENT',
    );
    expect(await codeOf(client.controller.createVolume({ name: 'v' }))).to.equal(
      'INVALID_ARGUMENT',
    );
    expect(
      await codeOf(
        client.controller.createVolume({
          name: 'v',
          volume_capabilities: [{ ...mount, access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' } }],
        }),
      ),
    ).to.equal('INVALID_ARGUMENT');
    expect(await codeOf(client.controller.deleteVolume({}))).to.equal('INVALID_ARGUMENT');
    expect(await codeOf(client.controller.createSnapshot({ name: 's' }))).to.equal(
      'INVALID_ARGUMENT',
    );
    expect(await codeOf(client.controller.deleteSnapshot({}))).to.equal('INVALID_ARGUMENT');
    expect(backend.volumeRequests).to.have.length(0);
    expect(backend.snapshotRequests).to.have.length(0);
  });

  it('hands the backend parsed sizes, class parameters and the sidecar metadata apart', async function () {
    await client.controller.createVolume({
      name: 'pvc-1',
      capacity_range: { required_bytes: '1073741824' },
      volume_capabilities: [mount],
      parameters: { 'csi.storage.k8s.io/pvc/name': 'data', zone: 'a' },
    });
    expect(backend.volumeRequests[0]).to.deep.include({
      name: 'pvc-1',
      requiredBytes: 1073741824,
      limitBytes: 0,
      parameters: { zone: 'a' },
      metadata: { 'csi.storage.k8s.io/pvc/name': 'data' },
    });
  });

  it('passes forceDelete to CreateSnapshot as a flag, not as a parameter', async function () {
    await client.controller.createVolume({ name: 'v', volume_capabilities: [mount] });
    const response = await client.controller.createSnapshot({
      name: 's',
      source_volume_id: 'v',
      parameters: { forceDelete: 'true', 'csi.storage.k8s.io/volumesnapshot/name': 'snap' },
    });
    expect(response.snapshot).to.deep.include({ snapshot_id: 's', ready_to_use: false });
    expect(backend.snapshotRequests[0]).to.deep.include({
      forceDelete: true,
      parameters: {},
      metadata: { 'csi.storage.k8s.io/volumesnapshot/name': 'snap' },
    });
    expect(
      await codeOf(
        client.controller.createSnapshot({
          name: 's2',
          source_volume_id: 'v',
          parameters: { forceDelete: 'maybe' },
        }),
      ),
    ).to.equal('INVALID_ARGUMENT');
  });

  it("turns the backend's DiskError into the gRPC code with its message", async function () {
    backend.failure = new DiskError('RESOURCE_EXHAUSTED', 'no room for pvc-9');
    let error: unknown;
    await client.controller
      .createVolume({ name: 'pvc-9', volume_capabilities: [mount] })
      .catch((e) => (error = e));
    expect(isGrpcError(error, grpc.status.RESOURCE_EXHAUSTED)).to.equal(true);
    expect((error as grpc.ServiceError).details).to.equal('no room for pvc-9');
  });

  it('answers a second call for a volume that is still being created with ABORTED', async function () {
    let open!: () => void;
    backend.gate = new Promise<void>((resolve) => (open = resolve));
    const first = client.controller.createVolume({ name: 'slow', volume_capabilities: [mount] });
    while (backend.volumeRequests.length === 0) await new Promise((r) => setTimeout(r, 5));
    expect(
      await codeOf(client.controller.createVolume({ name: 'slow', volume_capabilities: [mount] })),
    ).to.equal('ABORTED');
    expect(await codeOf(client.controller.deleteVolume({ volume_id: 'slow' }))).to.equal('ABORTED');
    open();
    expect((await first).volume?.volume_id).to.equal('slow');
  });

  it('validates capabilities of an existing volume and NOT_FOUND for an unknown one', async function () {
    await client.controller.createVolume({ name: 'v', volume_capabilities: [mount] });
    const ok = await client.controller.validateVolumeCapabilities({
      volume_id: 'v',
      volume_capabilities: [mount],
    });
    expect(ok.confirmed).not.to.equal(null);
    const multi = await client.controller.validateVolumeCapabilities({
      volume_id: 'v',
      volume_capabilities: [{ ...mount, access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' } }],
    });
    expect(multi.confirmed).to.equal(null);
    expect(multi.message).to.match(/MULTI_NODE_MULTI_WRITER/);
    expect(
      await codeOf(
        client.controller.validateVolumeCapabilities({
          volume_id: 'nope',
          volume_capabilities: [mount],
        }),
      ),
    ).to.equal('NOT_FOUND');
  });

  it('lists snapshots by id (empty for an unknown id) and by source volume', async function () {
    await client.controller.createVolume({ name: 'a', volume_capabilities: [mount] });
    await client.controller.createVolume({ name: 'b', volume_capabilities: [mount] });
    await client.controller.createSnapshot({ name: 'sa', source_volume_id: 'a' });
    await client.controller.createSnapshot({ name: 'sb', source_volume_id: 'b' });
    const byId = await client.controller.listSnapshots({ snapshot_id: 'sb' });
    expect(byId.entries.map((e) => e.snapshot?.snapshot_id)).to.deep.equal(['sb']);
    const unknown = await client.controller.listSnapshots({ snapshot_id: 'zz' });
    expect(unknown.entries).to.deep.equal([]);
    const bySource = await client.controller.listSnapshots({ source_volume_id: 'a' });
    expect(bySource.entries.map((e) => e.snapshot?.snapshot_id)).to.deep.equal(['sa']);
    expect(await codeOf(client.controller.listSnapshots({ starting_token: 'bogus' }))).to.equal(
      'ABORTED',
    );
  });
});
