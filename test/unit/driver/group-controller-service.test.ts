import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { DiskError } from '../../../src/csi/errors.js';
import { loadCsi } from '../../../src/csi/proto.js';
import { connectCsi } from '../../../src/csi/client.js';
import { LocalBackend } from '../../../src/driver/backends/local/backend.js';
import type { MountEntry } from '../../../src/driver/backends/local/mounts.js';
import { runCommand, type CommandRunner } from '../../../src/driver/backends/local/system.js';
import { startDriver } from '../../../src/driver/driver.js';
import {
  checkSnapshotIds,
  checkSourceVolumeIds,
  groupControllerService,
} from '../../../src/driver/group-controller-service.js';
import { OperationLocks } from '../../../src/driver/operations.js';
import { silentLogger } from '../../../src/observability/logger.js';
import type { CreateVolumeGroupSnapshotRequest__Output } from '../../../src/gen/csi/csi/v1/CreateVolumeGroupSnapshotRequest.js';
import { tool } from '../../support/tools.js';

const MiB = 1024 ** 2;
const node = 'unit-node';
const idOf = (name: string): string => `${name}@${node}`;

async function codeOf(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (error) {
    if (error instanceof DiskError) return `${error.code}: ${error.message}`;
    return `not a DiskError: ${(error as Error).message}`;
  }
  return 'OK';
}

const createRequest = (
  name: string,
  sourceVolumeIds: string[],
  parameters: Record<string, string> = {},
): CreateVolumeGroupSnapshotRequest__Output => ({
  name,
  source_volume_ids: sourceVolumeIds,
  secrets: {},
  parameters,
});

/**
 * A local backend in a temporary root. Commands go to the real tools (filefrag), except
 * losetup and fsfreeze: `mounted` volumes look attached and mounted at /mnt/<volume>, and
 * each freeze and thaw is recorded in `log` among the extent lookups of the copies.
 */
class Harness {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-groups-'));
  readonly log: string[] = [];
  readonly mounted = new Set<string>();
  failFreezeOf: string | undefined;
  backend!: LocalBackend;

  readonly run: CommandRunner = async (program, args) => {
    if (program === 'losetup') {
      const volume = path.basename(args.at(-1)!, '.img');
      return this.mounted.has(volume) ? `/dev/loop-${volume}\n` : '';
    }
    if (program === 'fsfreeze') {
      const [flag, mountPoint] = args as [string, string];
      if (flag === '--freeze' && mountPoint === this.failFreezeOf) {
        throw new Error(`fsfreeze: ${mountPoint}: Operation not supported`);
      }
      this.log.push(`${flag === '--freeze' ? 'freeze' : 'thaw'} ${mountPoint}`);
      return '';
    }
    if (program === 'filefrag') this.log.push(`read ${path.basename(args.at(-1)!)}`);
    return runCommand(program, args);
  };

  readonly mounts = async (): Promise<MountEntry[]> =>
    [...this.mounted].map((volume) => ({
      mountPoint: `/mnt/${volume}`,
      root: '/',
      fsType: 'ext4',
      source: `/dev/loop-${volume}`,
      options: ['rw'],
    }));

  async open(): Promise<LocalBackend> {
    this.backend = await LocalBackend.open({
      root: path.join(this.dir, 'root'),
      nodeId: node,
      onlineResize: false,
      vendorVersion: '0.0.0-test',
      run: this.run,
      logger: silentLogger(),
      readMounts: this.mounts,
    });
    return this.backend;
  }

  /** A 16 MiB volume whose first bytes are `content`. */
  async volume(name: string, content: string): Promise<string> {
    const volume = await this.backend.createVolume({
      name,
      requiredBytes: 16 * MiB,
      limitBytes: 0,
      parameters: {},
      metadata: {},
      capabilities: [
        {
          access: { type: 'mount', fsType: 'ext4', mountFlags: [] },
          accessMode: 'SINGLE_NODE_WRITER',
        },
      ],
    });
    const handle = await open(this.backend.layout.diskImage(name), 'r+');
    await handle.write(Buffer.from(content), 0, content.length, 0);
    await handle.close();
    return volume.id;
  }

  snapshotContent(snapshotId: string, bytes: number): string {
    const image = this.backend.layout.snapshotImage(snapshotId.split('@')[0]!);
    return readFileSync(image).subarray(0, bytes).toString();
  }

  async close(): Promise<void> {
    await this.backend?.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

describe('driver: GroupController service over the local backend', function () {
  let h: Harness;
  let service: ReturnType<typeof groupControllerService>;
  let a: string;
  let b: string;

  beforeEach(async function () {
    h = new Harness();
    const backend = await h.open();
    service = groupControllerService(backend, new OperationLocks());
    a = await h.volume('pvc-a', 'content of a');
    b = await h.volume('pvc-b', 'content of b');
  });

  afterEach(async function () {
    await h.close();
  });

  it('reports the one group capability', async function () {
    const response = await service.GroupControllerGetCapabilities({});
    expect(response.capabilities).to.deep.equal([
      { rpc: { type: 'CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT' } },
    ]);
  });

  it('cuts one snapshot per volume, all at the group creation time, holding each volume', async function () {
    const { group_snapshot: group } = await service.CreateVolumeGroupSnapshot(
      createRequest('group-1', [a, b]),
    );
    expect(group?.group_snapshot_id).to.equal(idOf('group-1'));
    expect(group?.ready_to_use).to.equal(true);
    const snapshots = group?.snapshots ?? [];
    expect(snapshots.map((s) => s.source_volume_id)).to.deep.equal([a, b]);
    for (const snapshot of snapshots) {
      expect(snapshot.group_snapshot_id).to.equal(idOf('group-1'));
      expect(snapshot.ready_to_use).to.equal(true);
      expect(snapshot.creation_time).to.deep.equal(group?.creation_time);
      expect(snapshot.size_bytes).to.equal(String(16 * MiB));
    }
    expect(h.snapshotContent(snapshots[0]!.snapshot_id!, 12)).to.equal('content of a');
    expect(h.snapshotContent(snapshots[1]!.snapshot_id!, 12)).to.equal('content of b');

    const got = await service.GetVolumeGroupSnapshot({
      group_snapshot_id: idOf('group-1'),
      snapshot_ids: snapshots.map((s) => s.snapshot_id!),
      secrets: {},
    });
    expect(got.group_snapshot).to.deep.equal(group);
  });

  it('answers a repeated create with the same group, in any volume order', async function () {
    const first = await service.CreateVolumeGroupSnapshot(createRequest('group-1', [a, b]));
    const again = await service.CreateVolumeGroupSnapshot(createRequest('group-1', [b, a]));
    const ids = (r: typeof first): string[] =>
      (r.group_snapshot?.snapshots ?? []).map((s) => s.snapshot_id!).sort();
    expect(ids(again)).to.deep.equal(ids(first));
    expect(again.group_snapshot?.creation_time).to.deep.equal(first.group_snapshot?.creation_time);
  });

  it('answers the name of a group of other volumes or another forceDelete with ALREADY_EXISTS', async function () {
    await service.CreateVolumeGroupSnapshot(createRequest('group-1', [a, b]));
    expect(await codeOf(service.CreateVolumeGroupSnapshot(createRequest('group-1', [a])))).to.match(
      /^ALREADY_EXISTS: .*exists for volumes pvc-a, pvc-b, not pvc-a$/,
    );
    expect(
      await codeOf(
        service.CreateVolumeGroupSnapshot(
          createRequest('group-1', [a, b], { forceDelete: 'true' }),
        ),
      ),
    ).to.match(/^ALREADY_EXISTS: .*forceDelete/);
  });

  it('refuses bad requests, naming the field', async function () {
    const cases: [CreateVolumeGroupSnapshotRequest__Output, RegExp][] = [
      [createRequest('', [a]), /^INVALID_ARGUMENT: name is required$/],
      [createRequest('group-1', []), /^INVALID_ARGUMENT: source_volume_ids is required$/],
      [createRequest('group-1', [a, '']), /^INVALID_ARGUMENT: source_volume_ids\[1\] is required$/],
      [
        createRequest('group-1', [a, a]),
        /^INVALID_ARGUMENT: source_volume_ids names .* more than once/,
      ],
      [createRequest('group/1', [a]), /^INVALID_ARGUMENT: group snapshot name "group\/1"/],
      [
        createRequest('group-1', [a], { color: 'red' }),
        /^INVALID_ARGUMENT: unknown group snapshot class parameter color/,
      ],
      [
        createRequest('group-1', [a], { forceDelete: 'maybe' }),
        /^INVALID_ARGUMENT: parameter forceDelete/,
      ],
      [
        createRequest('group-1', [a, idOf('pvc-missing')]),
        /^NOT_FOUND: source volume pvc-missing@unit-node does not exist$/,
      ],
      [
        createRequest('group-1', [a, 'pvc-x@other-node']),
        /^FAILED_PRECONDITION: volume pvc-x@other-node lives on node other-node/,
      ],
    ];
    for (const [request, expected] of cases) {
      expect(await codeOf(service.CreateVolumeGroupSnapshot(request)), request.name).to.match(
        expected,
      );
    }
    // Nothing was left behind by the refused requests.
    expect((await h.backend.listSnapshots({ maxEntries: 0 })).entries).to.deep.equal([]);
  });

  it('freezes every mounted member, in mount point order, until the last image is read', async function () {
    h.mounted.add('pvc-b');
    h.mounted.add('pvc-a');
    await service.CreateVolumeGroupSnapshot(createRequest('group-1', [b, a]));
    const freezes = h.log.filter((l) => !l.startsWith('read '));
    expect(freezes.slice(0, 2)).to.deep.equal(['freeze /mnt/pvc-a', 'freeze /mnt/pvc-b']);
    expect(freezes.slice(2).sort()).to.deep.equal(['thaw /mnt/pvc-a', 'thaw /mnt/pvc-b']);
    const lastRead = h.log.findLastIndex((l) => l === 'read pvc-a.img');
    const firstThaw = h.log.findIndex((l) => l.startsWith('thaw '));
    const lastFreeze = h.log.findLastIndex((l) => l.startsWith('freeze '));
    expect(h.log.findIndex((l) => l === 'read pvc-b.img')).to.be.above(lastFreeze);
    expect(firstThaw, h.log.join('\n')).to.be.above(lastRead);
  });

  it('thaws what it froze and leaves nothing behind when a freeze fails', async function () {
    h.mounted.add('pvc-a');
    h.mounted.add('pvc-b');
    h.failFreezeOf = '/mnt/pvc-b';
    expect(
      await codeOf(service.CreateVolumeGroupSnapshot(createRequest('group-1', [a, b]))),
    ).to.match(/Operation not supported/);
    expect(h.log).to.deep.equal(['freeze /mnt/pvc-a', 'thaw /mnt/pvc-a']);
    expect(await h.backend.getGroupSnapshot(idOf('group-1'))).to.equal(undefined);
    expect((await h.backend.listSnapshots({ maxEntries: 0 })).entries).to.deep.equal([]);
    const root = h.backend.layout;
    expect(readdirSync(root.groups)).to.deep.equal([]);
    expect(readdirSync(root.snapshots)).to.deep.equal([]);
    expect(readdirSync(root.tmp)).to.deep.equal([]);
    // and the retry succeeds
    h.failFreezeOf = undefined;
    const retried = await service.CreateVolumeGroupSnapshot(createRequest('group-1', [a, b]));
    expect(retried.group_snapshot?.ready_to_use).to.equal(true);
  });

  it('gets a group only with its own members, NOT_FOUND when there is none', async function () {
    const { group_snapshot: group } = await service.CreateVolumeGroupSnapshot(
      createRequest('group-1', [a, b]),
    );
    const [sa] = group!.snapshots!.map((s) => s.snapshot_id!);
    const get = (id: string, snapshotIds: string[]): Promise<unknown> =>
      service.GetVolumeGroupSnapshot({
        group_snapshot_id: id,
        snapshot_ids: snapshotIds,
        secrets: {},
      });
    expect(await codeOf(get(idOf('group-1'), []))).to.equal('OK');
    expect(await codeOf(get(idOf('group-1'), [sa!]))).to.match(
      /^INVALID_ARGUMENT: snapshot_ids do not match .*members not listed: group-1-1@unit-node/,
    );
    expect(await codeOf(get(idOf('group-1'), [sa!, idOf('other')]))).to.match(
      /not members: other@unit-node/,
    );
    expect(await codeOf(get(idOf('group-2'), []))).to.match(
      /^NOT_FOUND: group snapshot group-2@unit-node/,
    );
    expect(await codeOf(get('', []))).to.equal('INVALID_ARGUMENT: group_snapshot_id is required');
  });

  it('deletes a group with all its members; a member alone cannot be deleted', async function () {
    const { group_snapshot: group } = await service.CreateVolumeGroupSnapshot(
      createRequest('group-1', [a, b]),
    );
    const members = group!.snapshots!.map((s) => s.snapshot_id!);
    expect(await codeOf(h.backend.deleteSnapshot(members[0]!))).to.match(
      /^INVALID_ARGUMENT: snapshot group-1-0@unit-node is a member of group snapshot group-1@unit-node/,
    );
    const listed = await h.backend.listSnapshots({ maxEntries: 0 });
    expect(listed.entries.map((s) => s.groupSnapshotId)).to.deep.equal([
      idOf('group-1'),
      idOf('group-1'),
    ]);

    const del = (snapshotIds: string[]): Promise<unknown> =>
      service.DeleteVolumeGroupSnapshot({
        group_snapshot_id: idOf('group-1'),
        snapshot_ids: snapshotIds,
        secrets: {},
      });
    expect(await codeOf(del([members[1]!]))).to.match(
      /^INVALID_ARGUMENT: snapshot_ids do not match/,
    );
    expect(await h.backend.getGroupSnapshot(idOf('group-1'))).to.not.equal(undefined);
    expect(await codeOf(del(members))).to.equal('OK');
    expect(await h.backend.getGroupSnapshot(idOf('group-1'))).to.equal(undefined);
    for (const member of members) expect(await h.backend.getSnapshot(member)).to.equal(undefined);
    expect(readdirSync(h.backend.layout.snapshots)).to.deep.equal([]);
    expect(readdirSync(h.backend.layout.groups)).to.deep.equal([]);
    // Idempotent: gone, or never there, is OK.
    expect(await codeOf(del(members))).to.equal('OK');
    expect(await codeOf(del([]))).to.equal('OK');
    expect(
      await codeOf(
        service.DeleteVolumeGroupSnapshot({ group_snapshot_id: '', snapshot_ids: [], secrets: {} }),
      ),
    ).to.equal('INVALID_ARGUMENT: group_snapshot_id is required');
  });

  it('deletes a group whose cut was still in progress when the delete came', async function () {
    const creating = service.CreateVolumeGroupSnapshot(createRequest('group-1', [a, b]));
    const deleting = service.DeleteVolumeGroupSnapshot({
      group_snapshot_id: idOf('group-1'),
      snapshot_ids: [],
      secrets: {},
    });
    await Promise.all([creating, deleting]);
    expect(await h.backend.getGroupSnapshot(idOf('group-1'))).to.equal(undefined);
    expect((await h.backend.listSnapshots({ maxEntries: 0 })).entries).to.deep.equal([]);
  });

  it('restores a member like any snapshot; a dependent disk blocks deletion without forceDelete', async function () {
    for (const [name, forceDelete] of [
      ['group-kept', 'false'],
      ['group-forced', 'true'],
    ] as const) {
      const { group_snapshot: group } = await service.CreateVolumeGroupSnapshot(
        createRequest(name, [a, b], { forceDelete }),
      );
      const member = group!.snapshots![1]!.snapshot_id!;
      const restored = await h.backend.createVolume({
        name: `restore-${name}`,
        requiredBytes: 0,
        limitBytes: 0,
        parameters: {},
        metadata: {},
        capabilities: [
          {
            access: { type: 'mount', fsType: 'ext4', mountFlags: [] },
            accessMode: 'SINGLE_NODE_WRITER',
          },
        ],
        source: { kind: 'snapshot', snapshotId: member },
      });
      const image = readFileSync(h.backend.layout.diskImage(`restore-${name}`));
      expect(image.subarray(0, 12).toString()).to.equal('content of b');
      const outcome = await codeOf(
        service.DeleteVolumeGroupSnapshot({
          group_snapshot_id: idOf(name),
          snapshot_ids: [],
          secrets: {},
        }),
      );
      if (forceDelete === 'false') {
        expect(outcome).to.match(
          new RegExp(
            `^FAILED_PRECONDITION: group snapshot ${idOf(name)} is in use: .*${restored.id}`,
          ),
        );
        expect(await h.backend.getGroupSnapshot(idOf(name))).to.not.equal(undefined);
      } else {
        expect(outcome).to.equal('OK');
        expect(await h.backend.getVolume(restored.id)).to.not.equal(undefined);
      }
    }
  });

  it('refuses a CreateSnapshot that reuses the name of a member', async function () {
    await service.CreateVolumeGroupSnapshot(createRequest('group-1', [a, b]));
    expect(
      await codeOf(
        h.backend.createSnapshot({
          name: 'group-1-0',
          sourceVolumeId: a,
          forceDelete: false,
          parameters: {},
          metadata: {},
        }),
      ),
    ).to.match(/^ALREADY_EXISTS: snapshot group-1-0 exists as a member of group snapshot group-1$/);
  });

  it('removes a group a crash left half-made at the next start, thawing its file systems', async function () {
    h.mounted.add('pvc-a');
    await service.CreateVolumeGroupSnapshot(createRequest('group-1', [a, b]));
    const meta = h.backend.layout.groupMeta('group-1');
    const record = JSON.parse(readFileSync(meta, 'utf8')) as Record<string, unknown>;
    writeFileSync(
      meta,
      JSON.stringify({ ...record, state: 'creating', frozenMounts: ['/mnt/pvc-a'] }),
    );
    await h.backend.close();
    h.log.length = 0;
    const reopened = await h.open();
    expect(h.log).to.deep.equal(['thaw /mnt/pvc-a']);
    expect(await reopened.getGroupSnapshot(idOf('group-1'))).to.equal(undefined);
    expect(existsSync(meta)).to.equal(false);
    expect((await reopened.listSnapshots({ maxEntries: 0 })).entries).to.deep.equal([]);
  });
});

describe('driver: GroupController request checks', function () {
  const group = {
    id: 'g@n',
    snapshots: ['s1@n', 's2@n'].map((id) => ({
      id,
      sourceVolumeId: 'v',
      sizeBytes: 1,
      creationTime: new Date(0),
      readyToUse: true,
    })),
    creationTime: new Date(0),
    readyToUse: true,
  };
  const check = (ids: string[]): string => {
    try {
      checkSnapshotIds(group, ids);
      return 'OK';
    } catch (error) {
      return (error as DiskError).code;
    }
  };

  it('accepts exactly the members, in any order, or no list at all', function () {
    expect(check(['s2@n', 's1@n'])).to.equal('OK');
    expect(check([])).to.equal('OK');
    expect(check(['s1@n'])).to.equal('INVALID_ARGUMENT');
    expect(check(['s1@n', 's2@n', 's3@n'])).to.equal('INVALID_ARGUMENT');
    expect(check(['s1@n', 's1@n', 's2@n'])).to.equal('INVALID_ARGUMENT');
  });

  it('wants at least one source volume, each named once', function () {
    expect(checkSourceVolumeIds(['v1', 'v2'])).to.deep.equal(['v1', 'v2']);
    expect(() => checkSourceVolumeIds([])).to.throw(/source_volume_ids is required/);
    expect(() => checkSourceVolumeIds(['v1', 'v1'])).to.throw(/names v1 more than once/);
  });
});

describe('driver: serving the GroupController service', function () {
  let h: Harness;
  let dir: string;

  beforeEach(async function () {
    h = new Harness();
    await h.open();
    dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-groups-grpc-'));
  });

  afterEach(async function () {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves it beside the Controller service when the backend has groups, and says so', async function () {
    const endpoint = `unix://${dir}/csi.sock`;
    const driver = await startDriver({
      backend: h.backend,
      endpoint,
      nodeId: node,
      node: false,
      protoPath: tool('CSI_PROTO'),
    });
    const client = connectCsi(endpoint, { protoPath: tool('CSI_PROTO'), timeoutMs: 10_000 });
    const csi = loadCsi(tool('CSI_PROTO')).csi.v1;
    const groups = new csi.GroupController(
      `unix:${dir}/csi.sock`,
      grpc.credentials.createInsecure(),
    );
    try {
      const plugin = await client.identity.getPluginCapabilities({});
      expect(plugin.capabilities.map((c) => c.service?.type)).to.include.members([
        'CONTROLLER_SERVICE',
        'GROUP_CONTROLLER_SERVICE',
      ]);
      const capabilities = await new Promise<unknown>((resolve, reject) =>
        groups.groupControllerGetCapabilities({}, (error, response) =>
          error ? reject(error) : resolve(response),
        ),
      );
      expect(capabilities).to.deep.equal({
        capabilities: [{ rpc: { type: 'CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT' }, type: 'rpc' }],
      });
      const code = await new Promise<grpc.status>((resolve) =>
        groups.getVolumeGroupSnapshot({ group_snapshot_id: 'nope' }, (error) =>
          resolve(error?.code ?? grpc.status.OK),
        ),
      );
      expect(grpc.status[code]).to.equal('NOT_FOUND');
    } finally {
      groups.close();
      client.close();
      await driver.stop();
    }
  });
});
