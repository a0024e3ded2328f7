import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connectCsi, type CsiClient } from '../../../../src/csi/client.js';
import { serveCsi, type CsiServer } from '../../../../src/csi/server.js';
import type { GroupControllerHandlers } from '../../../../src/gen/csi/csi/v1/GroupController.js';
import type { IdentityHandlers } from '../../../../src/gen/csi/csi/v1/Identity.js';
import { supportsGroupSnapshots } from '../../../../src/snapshot/sidecar/group-content-sidecar.js';
import { tool } from '../../../support/tools.js';

const identity: IdentityHandlers = {
  GetPluginInfo: (_call, callback) => callback(null, { name: 'group.test', vendor_version: '1' }),
  GetPluginCapabilities: (_call, callback) => callback(null, { capabilities: [] }),
  Probe: (_call, callback) => callback(null, {}),
};

describe('CSI client: the GroupController service over gRPC', function () {
  let dir: string;
  let server: CsiServer | undefined;
  let client: CsiClient | undefined;
  const received: unknown[] = [];

  const groupController: GroupControllerHandlers = {
    GroupControllerGetCapabilities: (_call, callback) =>
      callback(null, {
        capabilities: [{ rpc: { type: 'CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT' } }],
      }),
    CreateVolumeGroupSnapshot: (call, callback) => {
      received.push(call.request);
      callback(null, {
        group_snapshot: {
          group_snapshot_id: `id-${call.request.name}`,
          ready_to_use: true,
          snapshots: call.request.source_volume_ids.map((volume) => ({
            snapshot_id: `snap-${volume}`,
            source_volume_id: volume,
            ready_to_use: true,
          })),
        },
      });
    },
    GetVolumeGroupSnapshot: (call, callback) => {
      received.push(call.request);
      callback(null, {
        group_snapshot: { group_snapshot_id: call.request.group_snapshot_id, ready_to_use: false },
      });
    },
    DeleteVolumeGroupSnapshot: (call, callback) => {
      received.push(call.request);
      callback(null, {});
    },
  };

  async function serve(withGroups: boolean): Promise<CsiClient> {
    server = await serveCsi({
      endpoint: `unix://${dir}/csi.sock`,
      protoPath: tool('CSI_PROTO'),
      handlers: withGroups ? { identity, groupController } : { identity },
    });
    client = connectCsi(`unix://${dir}/csi.sock`, {
      protoPath: tool('CSI_PROTO'),
      timeoutMs: 10_000,
    });
    return client;
  }

  beforeEach(function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-group-client-'));
    received.length = 0;
  });

  afterEach(async function () {
    client?.close();
    await server?.stop();
    client = undefined;
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('calls the four GroupController methods', async function () {
    const csi = (await serve(true)).groupController;
    expect(await supportsGroupSnapshots(csi, 10_000)).to.equal(true);
    const created = await csi.createVolumeGroupSnapshot({
      name: 'groupsnapshot-uid',
      source_volume_ids: ['vol-a', 'vol-b'],
      parameters: { consistency: 'crash' },
      secrets: { token: 'x' },
    });
    expect(created.group_snapshot?.group_snapshot_id).to.equal('id-groupsnapshot-uid');
    expect(created.group_snapshot?.snapshots.map((s) => s.source_volume_id)).to.deep.equal([
      'vol-a',
      'vol-b',
    ]);
    const got = await csi.getVolumeGroupSnapshot({
      group_snapshot_id: 'g-1',
      snapshot_ids: ['snap-vol-a'],
    });
    expect(got.group_snapshot?.ready_to_use).to.equal(false);
    await csi.deleteVolumeGroupSnapshot({ group_snapshot_id: 'g-1', snapshot_ids: ['snap-vol-a'] });
    expect(received).to.have.length(3);
    expect(received[0]).to.deep.include({ parameters: { consistency: 'crash' } });
    expect(received[2]).to.deep.include({ group_snapshot_id: 'g-1', snapshot_ids: ['snap-vol-a'] });
  });

  it('a driver without the service: no group snapshots (UNIMPLEMENTED)', async function () {
    const csi = (await serve(false)).groupController;
    expect(await supportsGroupSnapshots(csi, 10_000)).to.equal(false);
  });
});
