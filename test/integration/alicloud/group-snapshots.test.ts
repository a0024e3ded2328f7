import { expect } from 'chai';
import type { CreateGroupSnapshotRequest, GroupSnapshot } from '../../../src/driver/backend.js';
import { DiskError, isDiskError } from '../../../src/csi/errors.js';
import { tagKeys } from '../../../src/driver/backends/alicloud/parameters.js';
import type { EcsEmulator } from '../../support/ecs-emulator/emulator.js';
import { sleep } from '../../support/processes.js';
import {
  backendFor,
  createReadySnapshot,
  diskAvailable,
  region,
  snapshotRequest,
  sourceDisk,
  startEmulator,
  zone,
  type BackendSetup,
} from './harness.js';

async function failure(promise: Promise<unknown>): Promise<DiskError> {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(DiskError);
    return error as DiskError;
  }
  throw new Error('the call succeeded');
}

function groupRequest(
  name: string,
  sourceVolumeIds: string[],
  forceDelete = false,
): CreateGroupSnapshotRequest {
  return { name, sourceVolumeIds, forceDelete, parameters: {}, metadata: {} };
}

/** What the CO does: repeat the create until the group is ready, retrying "later" codes. */
async function createReadyGroup(
  setup: BackendSetup,
  request: CreateGroupSnapshotRequest,
  timeoutMs = 20_000,
): Promise<GroupSnapshot> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    try {
      const group = await setup.backend.createGroupSnapshot(request);
      if (group.readyToUse) return group;
      last = `${group.id} not ready`;
    } catch (error) {
      if (!isDiskError(error, 'UNAVAILABLE') && !isDiskError(error, 'ABORTED')) throw error;
      last = (error as Error).message;
    }
    await sleep(200);
  }
  throw new Error(`group ${request.name} not ready after ${timeoutMs} ms; last: ${last}`);
}

describe('alicloud backend: snapshot-consistent groups against the ECS emulator', function () {
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

  it('makes one ECS group per name, its members cut at one instant, ready once ECS accomplishes it', async function () {
    const disks = [sourceDisk(emulator), sourceDisk(emulator, 40)];
    const request = groupRequest('groupsnapshot-1', disks, true);
    const first = await setup.backend.createGroupSnapshot(request);
    expect(first.id).to.match(/^ssg-/);
    const ecsGroup = emulator.model.snapshotGroups.get(first.id)!;
    expect(ecsGroup.name).to.equal('groupsnapshot-1');
    expect(ecsGroup.tags).to.deep.include({ key: tagKeys.forceDelete, value: 'true' });
    expect(first.snapshots.map((s) => s.sourceVolumeId).sort()).to.deep.equal([...disks].sort());
    for (const member of first.snapshots) {
      expect(member.groupSnapshotId).to.equal(first.id);
      expect(member.creationTime.getTime()).to.equal(first.snapshots[0]!.creationTime.getTime());
    }
    expect(first.snapshots.find((s) => s.sourceVolumeId === disks[1])!.sizeBytes).to.equal(
      40 * 2 ** 30,
    );
    if (emulator.model.snapshotGroupStatus(ecsGroup) !== 'accomplished') {
      expect(first.readyToUse).to.equal(false);
    }

    const ready = await createReadyGroup(setup, request);
    expect(ready.id).to.equal(first.id);
    expect(emulator.model.snapshotGroupStatus(ecsGroup)).to.equal('accomplished');
    expect(emulator.callCount('CreateSnapshotGroup')).to.equal(1);
    expect(emulator.model.snapshotGroups.size).to.equal(1);
    const got = await setup.backend.getGroupSnapshot(first.id);
    expect(got?.readyToUse).to.equal(true);
    expect(got?.snapshots.map((s) => s.id).sort()).to.deep.equal(
      first.snapshots.map((s) => s.id).sort(),
    );

    // A restarted driver finds the group by its name, not by memory.
    const restarted = backendFor(emulator);
    try {
      expect((await restarted.backend.createGroupSnapshot(request)).id).to.equal(first.id);
      const other = await failure(
        restarted.backend.createGroupSnapshot(groupRequest('groupsnapshot-1', [disks[0]!], true)),
      );
      expect(other.code).to.equal('ALREADY_EXISTS');
      expect(other.message).to.include(first.id);
      const force = await failure(
        restarted.backend.createGroupSnapshot(groupRequest('groupsnapshot-1', disks, false)),
      );
      expect(force.code).to.equal('ALREADY_EXISTS');
      expect(force.message).to.include('forceDelete=true');
    } finally {
      await restarted.close();
    }
    expect(emulator.callCount('CreateSnapshotGroup')).to.equal(1);
  });

  it('tells a member from a single snapshot: GetSnapshot names its group, DeleteSnapshot refuses it alone', async function () {
    const disks = [sourceDisk(emulator), sourceDisk(emulator)];
    const group = await createReadyGroup(setup, groupRequest('groupsnapshot-members', disks));
    const member = group.snapshots[0]!;
    expect((await setup.backend.getSnapshot(member.id))?.groupSnapshotId).to.equal(group.id);
    const error = await failure(setup.backend.deleteSnapshot(member.id));
    expect(error.code).to.equal('INVALID_ARGUMENT');
    expect(error.message).to.include(`member of group snapshot ${group.id}`);
    expect(emulator.model.snapshots.has(member.id)).to.equal(true);
    expect(emulator.callCount('DeleteSnapshot')).to.equal(0);

    // A single snapshot of the driver's is known by its tags, without a look at the groups.
    const groupLookups = emulator.callCount('DescribeSnapshotGroups');
    const single = await createReadySnapshot(
      setup.backend,
      snapshotRequest('snapshot-single', disks[0]!),
    );
    expect((await setup.backend.getSnapshot(single.id))?.groupSnapshotId).to.equal(undefined);
    await setup.backend.deleteSnapshot(single.id);
    expect(emulator.model.snapshots.has(single.id)).to.equal(false);
    expect(emulator.callCount('DescribeSnapshotGroups')).to.equal(groupLookups);
  });

  it('deletes a group ECS failed rather than leak its members, and says to use a new name', async function () {
    const request = groupRequest('groupsnapshot-failed', [
      sourceDisk(emulator),
      sourceDisk(emulator),
    ]);
    const cut = await setup.backend.createGroupSnapshot(request);
    emulator.model.failSnapshotGroup(cut.id);
    const error = await failure(setup.backend.createGroupSnapshot(request));
    expect(error.code).to.equal('INTERNAL');
    expect(error.message).to.include(`${cut.id} (groupsnapshot-failed) failed`);
    expect(error.message).to.include('new name');
    expect(emulator.model.snapshotGroups.size).to.equal(0);
    expect(emulator.model.snapshots.size).to.equal(0);
    expect((await failure(setup.backend.createGroupSnapshot(request))).code).to.equal('INTERNAL');
    expect(emulator.model.snapshotGroups.size).to.equal(0);
  });

  describe('refuses up front, before CreateSnapshotGroup, naming the disk and the rule', function () {
    const cases: [string, (e: EcsEmulator) => string[], string, RegExp][] = [
      [
        'a disk outside the ESSD family',
        (e) => [
          sourceDisk(e),
          e.model.addDisk({
            regionId: region,
            zoneId: zone,
            sizeGiB: 20,
            category: 'cloud_ssd',
            instanceId: e.model.addInstance(region, zone).id,
          }).id,
        ],
        'INVALID_ARGUMENT',
        /disk d-\w+ is cloud_ssd: .*ESSD-family/,
      ],
      [
        'disks in two zones',
        (e) => [
          sourceDisk(e),
          e.model.addDisk({
            regionId: region,
            zoneId: 'cn-hangzhou-i',
            sizeGiB: 20,
            instanceId: e.model.addInstance(region, 'cn-hangzhou-i').id,
          }).id,
        ],
        'INVALID_ARGUMENT',
        /one zone: d-\w+ in cn-hangzhou-h; d-\w+ in cn-hangzhou-i/,
      ],
      [
        'more than 32 TiB in all',
        (e) => [sourceDisk(e, 30_000), sourceDisk(e, 3_000)],
        'INVALID_ARGUMENT',
        /at most 32768 GiB; these disks hold 33000 GiB/,
      ],
      [
        'more than 16 disks',
        (e) => Array.from({ length: 17 }, () => sourceDisk(e, 1)),
        'INVALID_ARGUMENT',
        /at most 16 disks; this one asks for 17/,
      ],
      [
        'a volume that does not exist',
        (e) => [sourceDisk(e), 'd-missing'],
        'NOT_FOUND',
        /d-missing/,
      ],
    ];
    for (const [what, disks, code, message] of cases) {
      it(what, async function () {
        const error = await failure(
          setup.backend.createGroupSnapshot(groupRequest('groupsnapshot-refused', disks(emulator))),
        );
        expect(error.code).to.equal(code);
        expect(error.message).to.match(message);
        expect(emulator.callCount('CreateSnapshotGroup')).to.equal(0);
      });
    }

    it('keeps to the limits it is given', async function () {
      const limited = backendFor(emulator, {
        backend: { groupSnapshotLimits: { maxDisks: 2, maxTotalGiB: 100 } },
      });
      try {
        const three = [sourceDisk(emulator), sourceDisk(emulator), sourceDisk(emulator)];
        expect(
          (await failure(limited.backend.createGroupSnapshot(groupRequest('g-three', three))))
            .message,
        ).to.include('at most 2 disks');
        const big = [sourceDisk(emulator, 60), sourceDisk(emulator, 60)];
        expect(
          (await failure(limited.backend.createGroupSnapshot(groupRequest('g-big', big)))).message,
        ).to.include('at most 100 GiB');
      } finally {
        await limited.close();
      }
      expect(emulator.callCount('CreateSnapshotGroup')).to.equal(0);
    });
  });

  it('names the disk that was never attached when ECS refuses it (FAILED_PRECONDITION)', async function () {
    const never = emulator.model.addDisk({ regionId: region, zoneId: zone, sizeGiB: 20 }).id;
    const error = await failure(
      setup.backend.createGroupSnapshot(
        groupRequest('groupsnapshot-never', [sourceDisk(emulator), never]),
      ),
    );
    expect(error.code).to.equal('FAILED_PRECONDITION');
    expect(error.message).to.include(`${never} never were`);
    expect(emulator.model.snapshotGroups.size).to.equal(0);
  });

  describe('DeleteVolumeGroupSnapshot and forceDelete', function () {
    async function groupWithRestoredMember(name: string, forceDelete: boolean) {
      const group = await createReadyGroup(
        setup,
        groupRequest(name, [sourceDisk(emulator), sourceDisk(emulator)], forceDelete),
      );
      const member = group.snapshots[0]!;
      const volume = await setup.backend.createVolume({
        name: `pvc-from-${name}`,
        requiredBytes: 0,
        limitBytes: 0,
        parameters: { type: 'cloud_essd', performanceLevel: 'PL0' },
        metadata: {},
        capabilities: [],
        source: { kind: 'snapshot', snapshotId: member.id },
      });
      await diskAvailable(emulator, volume.id);
      return { group, member, volumeId: volume.id };
    }

    it('without forceDelete, refuses while a disk was made from a member, deleting nothing', async function () {
      const { group, member, volumeId } = await groupWithRestoredMember('group-kept', false);
      const error = await failure(setup.backend.deleteGroupSnapshot(group.id));
      expect(error.code).to.equal('FAILED_PRECONDITION');
      expect(error.message).to.include(member.id);
      expect(error.message).to.include(volumeId);
      expect(emulator.callCount('DeleteSnapshotGroup')).to.equal(0);
      expect(emulator.model.snapshotGroups.has(group.id)).to.equal(true);
      for (const s of group.snapshots) expect(emulator.model.snapshots.has(s.id)).to.equal(true);

      await setup.backend.deleteVolume(volumeId);
      await setup.backend.deleteGroupSnapshot(group.id);
      expect(emulator.model.snapshotGroups.size).to.equal(0);
      expect(emulator.model.snapshots.size).to.equal(0);
    });

    it('with forceDelete, deletes the group and then the members ECS kept, with Force', async function () {
      const { group, member, volumeId } = await groupWithRestoredMember('group-forced', true);
      await setup.backend.deleteGroupSnapshot(group.id);
      expect(emulator.model.snapshotGroups.size).to.equal(0);
      expect(emulator.model.snapshots.size).to.equal(0);
      // The emulator deletes a snapshot disks were made from only with Force.
      expect(emulator.callCount('DeleteSnapshot', { succeeded: true })).to.equal(1);
      expect(emulator.model.snapshots.has(member.id)).to.equal(false);
      expect(emulator.model.disks.get(volumeId)?.sourceSnapshotId).to.equal(member.id);
    });

    it('treats an absent group as deleted and as not found', async function () {
      await setup.backend.deleteGroupSnapshot('ssg-doesnotexist');
      expect(await setup.backend.getGroupSnapshot('ssg-doesnotexist')).to.equal(undefined);
    });
  });
});
