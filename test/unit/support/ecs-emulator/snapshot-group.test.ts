import { expect } from 'chai';
import ecs from '@alicloud/ecs20140526';
import openapi from '@alicloud/openapi-client';
import { EcsEmulator } from '../../../support/ecs-emulator/emulator.js';
import { EcsApiError } from '../../../support/ecs-emulator/errors.js';
import {
  EcsModel,
  type Body,
  type Disk,
  type Params,
  type SnapshotGroupLimits,
} from '../../../support/ecs-emulator/model.js';

/**
 * Snapshot-consistent groups in the ECS emulator: CreateSnapshotGroup's documented rules,
 * checked before anything is created, the members' shared cut and progress, what
 * DescribeSnapshotGroups and DescribeSnapshots show, and what DeleteSnapshotGroup keeps.
 */
describe('ECS emulator: snapshot-consistent groups', function () {
  let now: number;
  let model: EcsModel;
  const region = 'cn-hangzhou';
  const zone = 'cn-hangzhou-h';
  const otherZone = 'cn-hangzhou-i';

  function newModel(limits?: SnapshotGroupLimits): EcsModel {
    return new EcsModel({
      regions: { [region]: [zone, otherZone] },
      timings: {
        snapshotCutMs: 1000,
        instantAccessMs: 2000,
        snapshotAccomplishMs: 10_000,
        diskCreateMs: 500,
      },
      snapshotQuotaPerDisk: 3,
      snapshotNeverAttachedDisks: false,
      ...(limits && { snapshotGroupLimits: limits }),
      now: () => now,
    });
  }

  beforeEach(function () {
    now = Date.parse('2026-01-01T00:00:00Z');
    model = newModel();
  });

  function fails(run: () => unknown): EcsApiError {
    try {
      run();
    } catch (error) {
      expect(error).to.be.instanceOf(EcsApiError);
      return error as EcsApiError;
    }
    throw new Error('expected an ECS error, the call succeeded');
  }

  function attachedDisks(
    count: number,
    spec: { category?: string; sizeGiB?: number; zoneId?: string; instanceId?: string } = {},
  ): Disk[] {
    const instanceId = spec.instanceId ?? model.addInstance(region, spec.zoneId ?? zone).id;
    return Array.from({ length: count }, () =>
      model.addDisk({
        regionId: region,
        zoneId: spec.zoneId ?? zone,
        sizeGiB: spec.sizeGiB ?? 40,
        category: spec.category ?? 'cloud_essd',
        instanceId,
      }),
    );
  }

  function diskParams(disks: Disk[]): Params {
    return Object.fromEntries(disks.map((d, i) => [`DiskId.${i + 1}`, d.id]));
  }

  function createGroup(params: Params): string {
    const body = model.CreateSnapshotGroup({ RegionId: region, ...params });
    return body.SnapshotGroupId as string;
  }

  function groups(params: Params = {}): Record<string, unknown>[] {
    const body = model.DescribeSnapshotGroups({ RegionId: region, ...params });
    return (body.SnapshotGroups as Body).SnapshotGroup as Record<string, unknown>[];
  }

  function group(id: string): Record<string, unknown> {
    const [found] = groups({ 'SnapshotGroupId.1': id });
    if (!found) throw new Error(`DescribeSnapshotGroups does not show ${id}`);
    return found;
  }

  function members(id: string): Record<string, unknown>[] {
    return (group(id).Snapshots as Body).Snapshot as Record<string, unknown>[];
  }

  function snapshots(params: Params = {}): Record<string, unknown>[] {
    const body = model.DescribeSnapshots({ RegionId: region, ...params });
    return (body.Snapshots as Body).Snapshot as Record<string, unknown>[];
  }

  describe('CreateSnapshotGroup', function () {
    it('snapshots the named disks at one instant and reports their progress until accomplished', function () {
      const disks = attachedDisks(3);
      const id = createGroup({ ...diskParams(disks), Name: 'db-set', Description: 'db and wal' });
      expect(id).to.match(/^ssg-/);
      expect(group(id)).to.include({
        Status: 'progressing',
        Name: 'db-set',
        Description: 'db and wal',
        CreationTime: '2026-01-01T00:00:00Z',
        InstanceId: disks[0]!.instanceId,
      });
      expect(members(id).map((m) => m.SourceDiskId)).to.deep.equal(disks.map((d) => d.id));
      expect(members(id).map((m) => m.Progress)).to.deep.equal(['0%', '0%', '0%']);

      now += 3000;
      const listed = snapshots({
        SnapshotIds: JSON.stringify(members(id).map((m) => m.SnapshotId)),
      });
      expect(listed).to.have.length(3);
      expect(new Set(listed.map((s) => s.CreationTime))).to.deep.equal(
        new Set(['2026-01-01T00:00:01Z']),
      );
      expect(listed.map((s) => s.Status)).to.deep.equal([
        'progressing',
        'progressing',
        'progressing',
      ]);
      expect(members(id).every((m) => m.Available === true && m.InstantAccess === true)).to.equal(
        true,
      );
      expect(group(id)).to.include({ Status: 'progressing' });

      now += 7000;
      expect(group(id)).to.include({ Status: 'accomplished' });
      expect(members(id).map((m) => m.Progress)).to.deep.equal(['100%', '100%', '100%']);
    });

    it('takes the instance disks less ExcludeDiskId.N when given InstanceId', function () {
      const disks = attachedDisks(3);
      const id = createGroup({
        InstanceId: disks[0]!.instanceId!,
        'ExcludeDiskId.1': disks[1]!.id,
      });
      expect(members(id).map((m) => m.SourceDiskId)).to.have.members([disks[0]!.id, disks[2]!.id]);
      expect(members(id)[0]!.Tags).to.deep.equal({
        Tag: [{ Key: 'acs:ecs:createFrom', Value: disks[0]!.instanceId }],
      });
    });

    it('groups disks of several instances in one zone, leaving the group InstanceId empty', function () {
      const disks = [...attachedDisks(1), ...attachedDisks(1, { category: 'cloud_auto' })];
      const id = createGroup(diskParams(disks));
      expect(group(id)).to.include({ InstanceId: '' });
      expect(members(id)).to.have.length(2);
    });

    it('accepts a group at the limits (16 disks, 32 TiB) and honours wider limits when configured', function () {
      createGroup(diskParams(attachedDisks(16, { sizeGiB: 2048 })));
      model = newModel({ maxDisks: 128, maxTotalGiB: 262_144 });
      const id = createGroup(diskParams(attachedDisks(20)));
      expect(members(id)).to.have.length(20);
    });

    interface Refusal {
      name: string;
      /** Builds the disks and returns the request parameters (without RegionId). */
      request: () => Params;
      code: string;
      status: number;
      /** Text the message must hold, e.g. the disk id, so a user knows what to fix. */
      mentions?: (params: Params) => string[];
    }

    const refusals: Refusal[] = [
      {
        name: 'DiskId.N together with ExcludeDiskId.N',
        request: () => {
          const [a, b] = attachedDisks(2);
          return { InstanceId: a!.instanceId!, 'DiskId.1': a!.id, 'ExcludeDiskId.1': b!.id };
        },
        code: 'InvalidParam.ExcludeDiskIdsAndDiskIds.Conflict',
        status: 400,
      },
      {
        name: 'neither InstanceId nor DiskId.N',
        request: () => ({ Name: 'nothing' }),
        code: 'MissingParamter.InstanceId',
        status: 400,
      },
      {
        name: 'ExcludeDiskId.N without InstanceId',
        request: () => ({ 'ExcludeDiskId.1': attachedDisks(1)[0]!.id }),
        code: 'MissingParamter.InstanceId',
        status: 400,
      },
      {
        name: 'a disk that does not exist',
        request: () => ({ ...diskParams(attachedDisks(1)), 'DiskId.2': 'd-missing' }),
        code: 'InvalidDiskId.NotFound',
        status: 404,
        mentions: () => ['d-missing'],
      },
      {
        name: 'an instance that does not exist',
        request: () => ({ InstanceId: 'i-missing' }),
        code: 'InvalidInstanceId.NotFound',
        status: 404,
        mentions: () => ['i-missing'],
      },
      {
        name: 'a disk outside the ESSD family',
        request: () =>
          diskParams([...attachedDisks(1), ...attachedDisks(1, { category: 'cloud_ssd' })]),
        code: 'DiskCategory.OperationNotSupported',
        status: 400,
        mentions: (p) => [p['DiskId.2']!, 'cloud_ssd'],
      },
      {
        name: 'disks in two zones',
        request: () =>
          diskParams([...attachedDisks(1), ...attachedDisks(1, { zoneId: otherZone })]),
        code: 'InvalidDiskIds.NotInSameZone',
        status: 400,
        mentions: (p) => [p['DiskId.2']!, otherZone],
      },
      {
        name: 'a Regional ESSD with a zonal disk',
        request: () =>
          diskParams([
            ...attachedDisks(1),
            model.addDisk({
              regionId: region,
              zoneId: '',
              sizeGiB: 40,
              category: 'cloud_regional_disk_auto',
              instanceId: model.addInstance(region, zone).id,
            }),
          ]),
        code: 'InvalidDisk.DiskCategoryInconsistent',
        status: 403,
        mentions: (p) => [p['DiskId.2']!],
      },
      {
        name: 'more than 16 disks',
        request: () => diskParams(attachedDisks(17)),
        code: 'NumberExceed.TooManyDisks',
        status: 403,
        mentions: () => ['17', '16'],
      },
      {
        name: 'more than 32 TiB in all',
        request: () => diskParams(attachedDisks(2, { sizeGiB: 20_000 })),
        code: 'CapacityExceed.TooManyDisks',
        status: 403,
        mentions: () => ['40000', '32768'],
      },
      {
        name: 'a disk never attached',
        request: () => {
          const fresh = model.addDisk({ regionId: region, zoneId: zone, sizeGiB: 40 });
          return diskParams([...attachedDisks(1), fresh]);
        },
        code: 'IncorrectDiskStatus.NeverAttached',
        status: 403,
        mentions: (p) => [p['DiskId.2']!],
      },
      {
        name: 'a disk with a snapshot in progress',
        request: () => {
          const disks = attachedDisks(2);
          model.CreateSnapshot({ DiskId: disks[1]!.id });
          return diskParams(disks);
        },
        code: 'IncorrectDiskStatus.CreatingSnapshot',
        status: 403,
        mentions: (p) => [p['DiskId.2']!],
      },
      {
        name: 'a disk at its snapshot quota',
        request: () => {
          const disks = attachedDisks(2);
          for (let i = 0; i < 3; i++) {
            model.CreateSnapshot({ DiskId: disks[0]!.id });
            now += 10_000;
          }
          return diskParams(disks);
        },
        code: 'QuotaExceed.Snapshot',
        status: 403,
        mentions: (p) => [p['DiskId.1']!],
      },
      {
        name: 'with InstanceId, a disk of another instance',
        request: () => {
          const [own] = attachedDisks(1);
          const [foreign] = attachedDisks(1);
          return { InstanceId: own!.instanceId!, 'DiskId.1': own!.id, 'DiskId.2': foreign!.id };
        },
        code: 'InvalidParameter',
        status: 400,
        mentions: (p) => [p['DiskId.2']!],
      },
      {
        name: 'an instance whose every disk is excluded',
        request: () => {
          const [only] = attachedDisks(1);
          return { InstanceId: only!.instanceId!, 'ExcludeDiskId.1': only!.id };
        },
        code: 'InvalidInstance.NoDisk',
        status: 403,
      },
      {
        name: 'a name that does not start with a letter',
        request: () => ({ ...diskParams(attachedDisks(1)), Name: '1st-group' }),
        code: 'InvalidParameter.Name',
        status: 400,
      },
      {
        name: 'a description that starts with https://',
        request: () => ({ ...diskParams(attachedDisks(1)), Description: 'https://example.com' }),
        code: 'InvalidParameter.Description',
        status: 400,
      },
      {
        name: 'a tag key given twice',
        request: () => ({
          ...diskParams(attachedDisks(1)),
          'Tag.1.Key': 'app',
          'Tag.1.Value': 'a',
          'Tag.2.Key': 'app',
          'Tag.2.Value': 'b',
        }),
        code: 'Duplicate.TagKey',
        status: 400,
      },
      {
        name: 'a disk named twice',
        request: () => {
          const [disk] = attachedDisks(1);
          return { 'DiskId.1': disk!.id, 'DiskId.2': disk!.id };
        },
        code: 'InvalidParameter',
        status: 400,
        mentions: (p) => [p['DiskId.1']!],
      },
      {
        name: 'a gap in DiskId.N',
        request: () => {
          const [a, b] = attachedDisks(2);
          return { 'DiskId.1': a!.id, 'DiskId.3': b!.id };
        },
        code: 'InvalidParameter',
        status: 400,
        mentions: () => ['DiskId.3'],
      },
    ];

    for (const refusal of refusals) {
      it(`refuses ${refusal.name} (${refusal.code}) and creates nothing`, function () {
        const params = refusal.request();
        const snapshotsBefore = model.snapshots.size;
        const error = fails(() => model.CreateSnapshotGroup({ RegionId: region, ...params }));
        expect(error.code, error.message).to.equal(refusal.code);
        expect(error.status).to.equal(refusal.status);
        for (const text of refusal.mentions?.(params) ?? []) expect(error.message).to.contain(text);
        expect(model.snapshotGroups.size).to.equal(0);
        expect(model.snapshots.size).to.equal(snapshotsBefore);
      });
    }

    it('refuses groups beyond narrower configured limits', function () {
      model = newModel({ maxDisks: 2, maxTotalGiB: 100 });
      expect(fails(() => createGroup(diskParams(attachedDisks(3, { sizeGiB: 10 })))).code).to.equal(
        'NumberExceed.TooManyDisks',
      );
      expect(fails(() => createGroup(diskParams(attachedDisks(2, { sizeGiB: 60 })))).code).to.equal(
        'CapacityExceed.TooManyDisks',
      );
    });

    it('relaxes the never-attached rule as CreateSnapshot does', function () {
      model.options.snapshotNeverAttachedDisks = true;
      const fresh = model.addDisk({ regionId: region, zoneId: zone, sizeGiB: 40 });
      expect(createGroup(diskParams([fresh]))).to.match(/^ssg-/);
    });
  });

  describe('DescribeSnapshotGroups', function () {
    it('filters by id, status, name, tag and instance, each filter ANDed', function () {
      const [a] = attachedDisks(1);
      const [b] = attachedDisks(1);
      const first = createGroup({
        'DiskId.1': a!.id,
        Name: 'first',
        'Tag.1.Key': 'app',
        'Tag.1.Value': 'db',
      });
      now += 10_000;
      const second = createGroup({ 'DiskId.1': b!.id, Name: 'second' });
      const ids = (found: Record<string, unknown>[]) => found.map((g) => g.SnapshotGroupId);

      expect(ids(groups())).to.have.members([first, second]);
      expect(ids(groups({ 'SnapshotGroupId.1': second }))).to.deep.equal([second]);
      expect(ids(groups({ 'Status.1': 'accomplished' }))).to.deep.equal([first]);
      expect(ids(groups({ 'Status.1': 'progressing', 'Status.2': 'failed' }))).to.deep.equal([
        second,
      ]);
      expect(ids(groups({ Name: 'first' }))).to.deep.equal([first]);
      expect(ids(groups({ 'Tag.1.Key': 'app', 'Tag.1.Value': 'db' }))).to.deep.equal([first]);
      expect(ids(groups({ InstanceId: b!.instanceId! }))).to.deep.equal([second]);
      expect(ids(groups({ Name: 'first', 'Status.1': 'progressing' }))).to.deep.equal([]);
      expect(group(first).Tags).to.deep.equal({ Tag: [{ Key: 'app', Value: 'db' }] });
    });

    it('pages with MaxResults and NextToken, 10 a page by default', function () {
      for (const disk of attachedDisks(12)) createGroup({ 'DiskId.1': disk.id });
      const firstPage = model.DescribeSnapshotGroups({ RegionId: region });
      expect(((firstPage.SnapshotGroups as Body).SnapshotGroup as unknown[]).length).to.equal(10);
      const seen = new Set<unknown>();
      let token: string | undefined;
      let pages = 0;
      do {
        const body = model.DescribeSnapshotGroups({
          RegionId: region,
          MaxResults: '5',
          ...(token && { NextToken: token }),
        });
        for (const g of (body.SnapshotGroups as Body).SnapshotGroup as Record<string, unknown>[])
          seen.add(g.SnapshotGroupId);
        token = (body.NextToken as string) || undefined;
        pages += 1;
      } while (token);
      expect(pages).to.equal(3);
      expect(seen.size).to.equal(12);
    });

    const refusals: { name: string; params: Params; code: string; status: number }[] = [
      {
        name: 'an unknown status',
        params: { 'Status.1': 'done' },
        code: 'InvalidStatus.ValueNotSupported',
        status: 403,
      },
      {
        name: 'more than 10 group ids',
        params: Object.fromEntries(
          Array.from({ length: 11 }, (_, i) => [`SnapshotGroupId.${i + 1}`, `ssg-${i}`]),
        ),
        code: 'InvalidParameter',
        status: 400,
      },
      {
        name: 'an unknown instance',
        params: { InstanceId: 'i-missing' },
        code: 'InvalidInstanceId.NotFound',
        status: 404,
      },
      {
        name: 'an unknown region',
        params: { RegionId: 'xx-nowhere' },
        code: 'InvalidRegionId.NotFound',
        status: 404,
      },
    ];
    for (const refusal of refusals) {
      it(`refuses ${refusal.name} (${refusal.code})`, function () {
        const error = fails(() =>
          model.DescribeSnapshotGroups({ RegionId: region, ...refusal.params }),
        );
        expect(error.code).to.equal(refusal.code);
        expect(error.status).to.equal(refusal.status);
      });
    }
  });

  describe('failure', function () {
    it('fails a group and its unfinished members, which then cannot be restored from', function () {
      const disks = attachedDisks(2);
      const id = createGroup(diskParams(disks));
      now += 3000;
      model.failSnapshotGroup(id);
      expect(group(id)).to.include({ Status: 'failed' });
      expect(members(id).map((m) => [m.Available, m.Progress])).to.deep.equal([
        [false, '30%'],
        [false, '30%'],
      ]);
      now += 60_000;
      expect(groups({ 'Status.1': 'failed' }).map((g) => g.SnapshotGroupId)).to.deep.equal([id]);
      const memberId = members(id)[0]!.SnapshotId as string;
      expect(snapshots({ SnapshotIds: JSON.stringify([memberId]) })[0]).to.include({
        Status: 'failed',
        Available: false,
      });
      const error = fails(() =>
        model.CreateDisk({
          RegionId: region,
          ZoneId: zone,
          DiskCategory: 'cloud_auto',
          SnapshotId: memberId,
        }),
      );
      expect(error.code).to.equal('InvalidSnapshotId.NotReady');
    });
  });

  describe('DeleteSnapshotGroup', function () {
    it('deletes the group and its member snapshots, and then reports the group missing', function () {
      const id = createGroup(diskParams(attachedDisks(2)));
      const memberIds = members(id).map((m) => m.SnapshotId as string);
      now += 10_000;
      const body = model.DeleteSnapshotGroup({ RegionId: region, SnapshotGroupId: id });
      expect((body.OperationProgressSet as Body).OperationProgress).to.deep.equal(
        memberIds.map((sid) => ({
          OperationStatus: 'Success',
          ErrorCode: '',
          ErrorMsg: '',
          RelatedItemSet: { RelatedItem: [{ Name: 'SnapshotId', Value: sid }] },
        })),
      );
      expect(snapshots({ SnapshotIds: JSON.stringify(memberIds) })).to.deep.equal([]);
      expect(groups()).to.deep.equal([]);
      const error = fails(() =>
        model.DeleteSnapshotGroup({ RegionId: region, SnapshotGroupId: id }),
      );
      expect([error.status, error.code]).to.deep.equal([404, 'InvalidSnapshotGroup.NotFound']);
      expect(error.message).to.contain(id);
    });

    it('keeps members that disks or images were created from, as ordinary snapshots', function () {
      const id = createGroup(diskParams(attachedDisks(3)));
      const [restored, imaged, plain] = members(id).map((m) => m.SnapshotId as string);
      now += 3000;
      model.CreateDisk({
        RegionId: region,
        ZoneId: zone,
        DiskCategory: 'cloud_auto',
        SnapshotId: restored!,
      });
      model.markUsedByImage(imaged!);
      const body = model.DeleteSnapshotGroup({ RegionId: region, SnapshotGroupId: id });
      const outcome = ((body.OperationProgressSet as Body).OperationProgress as Body[]).map((p) => [
        ((p.RelatedItemSet as Body).RelatedItem as Body[])[0]!.Value,
        p.OperationStatus,
        p.ErrorCode,
      ]);
      expect(outcome).to.deep.equal([
        [restored, 'Failed', 'SnapshotCreatedDisk'],
        [imaged, 'Failed', 'SnapshotCreatedImage'],
        [plain, 'Success', ''],
      ]);
      expect(groups()).to.deep.equal([]);
      expect(snapshots().map((s) => s.SnapshotId)).to.have.members([restored, imaged]);
      // Kept like any snapshot a disk came from: DeleteSnapshot needs Force.
      expect(fails(() => model.DeleteSnapshot({ SnapshotId: restored! })).code).to.equal(
        'SnapshotCreatedDisk',
      );
      model.DeleteSnapshot({ SnapshotId: restored!, Force: 'true' });
    });

    it('cancels a progressing group, freeing its disks for new snapshots', function () {
      const disks = attachedDisks(2);
      const id = createGroup(diskParams(disks));
      model.DeleteSnapshotGroup({ RegionId: region, SnapshotGroupId: id });
      expect(model.snapshots.size).to.equal(0);
      expect(createGroup(diskParams(disks))).to.match(/^ssg-/);
    });

    it('drops a member deleted with DeleteSnapshot from the group', function () {
      const id = createGroup(diskParams(attachedDisks(2)));
      const [gone, stays] = members(id).map((m) => m.SnapshotId);
      model.DeleteSnapshot({ SnapshotId: gone as string });
      expect(members(id).map((m) => m.SnapshotId)).to.deep.equal([stays]);
    });
  });

  describe('over the wire with the SDK', function () {
    let emulator: EcsEmulator;
    let clock: number;

    before(async function () {
      clock = Date.now();
      emulator = await new EcsEmulator({
        credentials: { AKID: { accessKeySecret: 'secret' } },
        timings: { snapshotCutMs: 100, instantAccessMs: 100, snapshotAccomplishMs: 1000 },
        now: () => clock,
      }).start();
    });

    after(async function () {
      await emulator?.stop();
    });

    function client() {
      return new ecs.default(
        new openapi.Config({
          accessKeyId: 'AKID',
          accessKeySecret: 'secret',
          endpoint: emulator.endpoint,
          protocol: 'http',
        }),
      );
    }

    it('creates (idempotently by ClientToken), describes and deletes a group through signed requests', async function () {
      const instance = emulator.model.addInstance(region, zone);
      const disks = [1, 2].map(() =>
        emulator.model.addDisk({
          regionId: region,
          zoneId: zone,
          sizeGiB: 40,
          instanceId: instance.id,
        }),
      );
      const create = new ecs.CreateSnapshotGroupRequest({
        regionId: region,
        diskId: disks.map((d) => d.id),
        name: 'wire-group',
        clientToken: 'token-1',
        tag: [new ecs.CreateSnapshotGroupRequestTag({ key: 'app', value: 'db' })],
      });
      const created = await client().createSnapshotGroup(create);
      const id = created.body?.snapshotGroupId ?? '';
      expect(id).to.match(/^ssg-/);
      const again = await client().createSnapshotGroup(create);
      expect(again.body?.snapshotGroupId).to.equal(id);
      expect(emulator.model.snapshotGroups.size).to.equal(1);

      clock += 1000;
      const described = await client().describeSnapshotGroups(
        new ecs.DescribeSnapshotGroupsRequest({
          regionId: region,
          snapshotGroupId: [id],
          status: ['accomplished'],
        }),
      );
      const [found] = described.body?.snapshotGroups?.snapshotGroup ?? [];
      expect(found?.name).to.equal('wire-group');
      expect(found?.tags?.tag?.map((t) => [t.key, t.value])).to.deep.equal([['app', 'db']]);
      expect(found?.snapshots?.snapshot?.map((s) => s.sourceDiskId)).to.deep.equal(
        disks.map((d) => d.id),
      );
      expect(
        found?.snapshots?.snapshot?.every((s) => s.progress === '100%' && s.available),
      ).to.equal(true);

      const deleted = await client().deleteSnapshotGroup(
        new ecs.DeleteSnapshotGroupRequest({ regionId: region, snapshotGroupId: id }),
      );
      expect(
        deleted.body?.operationProgressSet?.operationProgress?.map((p) => p.operationStatus),
      ).to.deep.equal(['Success', 'Success']);
      const missing = await client()
        .deleteSnapshotGroup(
          new ecs.DeleteSnapshotGroupRequest({ regionId: region, snapshotGroupId: id }),
        )
        .then(
          () => undefined,
          (error: { code: string; statusCode: number }) => error,
        );
      expect([missing?.statusCode, missing?.code]).to.deep.equal([
        404,
        'InvalidSnapshotGroup.NotFound',
      ]);
    });

    it('fails a group through the admin endpoint, as a hand-run emulator is driven', async function () {
      const instance = emulator.model.addInstance(region, zone);
      const disk = emulator.model.addDisk({
        regionId: region,
        zoneId: zone,
        sizeGiB: 40,
        instanceId: instance.id,
      });
      const created = await client().createSnapshotGroup(
        new ecs.CreateSnapshotGroupRequest({ regionId: region, diskId: [disk.id] }),
      );
      const id = created.body?.snapshotGroupId ?? '';
      const admin = (snapshotGroupId: string) =>
        fetch(`http://${emulator.endpoint}/__emulator/fail-snapshot-group`, {
          method: 'POST',
          body: JSON.stringify({ snapshotGroupId }),
        });
      expect((await admin(id)).status).to.equal(200);
      expect((await admin('ssg-missing')).status).to.equal(400);
      const described = await client().describeSnapshotGroups(
        new ecs.DescribeSnapshotGroupsRequest({ regionId: region, status: ['failed'] }),
      );
      expect(
        described.body?.snapshotGroups?.snapshotGroup?.map((g) => g.snapshotGroupId),
      ).to.deep.equal([id]);
    });
  });
});
