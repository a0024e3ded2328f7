import { expect } from 'chai';
import { EcsApiError } from '../../../support/ecs-emulator/errors.js';
import { Faults } from '../../../support/ecs-emulator/faults.js';
import { EcsModel, type Body, type Params } from '../../../support/ecs-emulator/model.js';

/** The emulator's ECS semantics, driven with a clock that only moves when told to. */
describe('ECS emulator model', function () {
  let now: number;
  let model: EcsModel;
  const region = 'cn-hangzhou';
  const zone = 'cn-hangzhou-h';

  beforeEach(function () {
    now = Date.parse('2026-01-01T00:00:00Z');
    model = new EcsModel({
      regions: { [region]: [zone, 'cn-hangzhou-i'] },
      timings: {
        snapshotCutMs: 1000,
        instantAccessMs: 2000,
        snapshotAccomplishMs: 10_000,
        diskCreateMs: 500,
      },
      snapshotQuotaPerDisk: 3,
      snapshotNeverAttachedDisks: false,
      now: () => now,
    });
  });

  function fails(run: () => unknown, code: string, status?: number): EcsApiError {
    try {
      run();
    } catch (error) {
      expect(error).to.be.instanceOf(EcsApiError);
      expect((error as EcsApiError).code).to.equal(code);
      if (status !== undefined) expect((error as EcsApiError).status).to.equal(status);
      return error as EcsApiError;
    }
    throw new Error(`expected ${code}`);
  }

  function attachedDisk(category = 'cloud_essd'): string {
    const instance = model.addInstance(region, zone);
    return model.addDisk({
      regionId: region,
      zoneId: zone,
      sizeGiB: 40,
      category,
      instanceId: instance.id,
    }).id;
  }

  function snapshot(id: string): Record<string, unknown> {
    const body = model.DescribeSnapshots({ RegionId: region, SnapshotIds: JSON.stringify([id]) });
    return ((body.Snapshots as Body).Snapshot as Record<string, unknown>[])[0]!;
  }

  function disk(id: string): Record<string, unknown> {
    const body = model.DescribeDisks({ RegionId: region, DiskIds: JSON.stringify([id]) });
    return ((body.Disks as Body).Disk as Record<string, unknown>[])[0]!;
  }

  it('moves a snapshot from progressing to accomplished, with Progress, the cut time and Available', function () {
    const diskId = attachedDisk();
    const { SnapshotId } = model.CreateSnapshot({ DiskId: diskId }) as { SnapshotId: string };
    expect(snapshot(SnapshotId)).to.include({
      Status: 'progressing',
      Progress: '0%',
      CreationTime: '',
      Available: false,
    });
    now += 1000;
    expect(snapshot(SnapshotId)).to.include({
      Status: 'progressing',
      Progress: '10%',
      CreationTime: '2026-01-01T00:00:01Z',
    });
    now += 2000;
    expect(snapshot(SnapshotId)).to.include({
      Status: 'progressing',
      Progress: '30%',
      Available: true,
      SourceDiskSize: '40',
    });
    now += 7000;
    expect(snapshot(SnapshotId)).to.include({
      Status: 'accomplished',
      Progress: '100%',
      Available: true,
    });
  });

  it('makes a non-ESSD snapshot usable only once accomplished', function () {
    const diskId = attachedDisk('cloud_ssd');
    const { SnapshotId } = model.CreateSnapshot({ DiskId: diskId }) as { SnapshotId: string };
    now += 9000;
    expect(snapshot(SnapshotId)).to.include({ Available: false });
    now += 1000;
    expect(snapshot(SnapshotId)).to.include({ Available: true });
  });

  it('takes one snapshot of a disk at a time and enforces the per-disk quota', function () {
    const diskId = attachedDisk();
    model.CreateSnapshot({ DiskId: diskId });
    fails(
      () => model.CreateSnapshot({ DiskId: diskId }),
      'IncorrectDiskStatus.CreatingSnapshot',
      403,
    );
    now += 10_000;
    model.CreateSnapshot({ DiskId: diskId });
    now += 10_000;
    model.CreateSnapshot({ DiskId: diskId });
    now += 10_000;
    fails(() => model.CreateSnapshot({ DiskId: diskId }), 'QuotaExceed.Snapshot', 403);
  });

  it('refuses to snapshot a disk that was never attached, unless relaxed', function () {
    const { DiskId } = model.CreateDisk({
      RegionId: region,
      ZoneId: zone,
      DiskCategory: 'cloud_auto',
      Size: '10',
    }) as {
      DiskId: string;
    };
    now += 500;
    fails(() => model.CreateSnapshot({ DiskId }), 'IncorrectDiskStatus.NeverAttached');
    model.options.snapshotNeverAttachedDisks = true;
    expect(model.CreateSnapshot({ DiskId })).to.have.property('SnapshotId');
  });

  it('creates a disk Creating then Available, and holds it in Creating on request', function () {
    const params: Params = {
      RegionId: region,
      ZoneId: zone,
      DiskCategory: 'cloud_essd',
      PerformanceLevel: 'PL0',
      Size: '5',
    };
    const { DiskId } = model.CreateDisk(params) as { DiskId: string };
    expect(disk(DiskId)).to.include({ Status: 'Creating', Size: 5, PerformanceLevel: 'PL0' });
    fails(() => model.DeleteDisk({ DiskId }), 'IncorrectDiskStatus.Initializing');
    now += 500;
    expect(disk(DiskId)).to.include({ Status: 'Available' });
    model.holdDiskCreation = true;
    const held = (model.CreateDisk(params) as { DiskId: string }).DiskId;
    now += 60_000;
    expect(disk(held)).to.include({ Status: 'Creating' });
    model.releaseDisks([held]);
    expect(disk(held)).to.include({ Status: 'Available' });
  });

  it('checks category, size and zone when creating disks', function () {
    fails(
      () =>
        model.CreateDisk({ RegionId: region, ZoneId: zone, DiskCategory: 'cloud_ssd', Size: '10' }),
      'InvalidDiskSize.TooSmall',
    );
    fails(
      () =>
        model.CreateDisk({ RegionId: region, ZoneId: zone, DiskCategory: 'floppy', Size: '10' }),
      'InvalidDiskCategory.ValueNotSupported',
    );
    fails(
      () =>
        model.CreateDisk({
          RegionId: region,
          ZoneId: 'mars-1a',
          DiskCategory: 'cloud_auto',
          Size: '10',
        }),
      'InvalidZoneId.NotFound',
    );
    fails(
      () => model.CreateDisk({ RegionId: region, DiskCategory: 'cloud_auto', Size: '10' }),
      'MissingParameter',
    );
    fails(
      () => model.CreateDisk({ RegionId: 'xx-nowhere', ZoneId: zone, Size: '10' }),
      'InvalidRegionId.NotFound',
    );
  });

  it('restores a disk from a usable snapshot, raising a smaller size to the source size', function () {
    const diskId = attachedDisk();
    const { SnapshotId } = model.CreateSnapshot({ DiskId: diskId }) as { SnapshotId: string };
    const restore: Params = {
      RegionId: region,
      ZoneId: zone,
      DiskCategory: 'cloud_auto',
      Size: '10',
      SnapshotId,
    };
    fails(() => model.CreateDisk(restore), 'InvalidSnapshotId.NotReady');
    now += 3000;
    const { DiskId } = model.CreateDisk(restore) as { DiskId: string };
    expect(disk(DiskId)).to.include({ Size: 40, SourceSnapshotId: SnapshotId });
    fails(
      () => model.CreateDisk({ ...restore, SnapshotId: 's-missing' }),
      'InvalidSnapshotId.NotFound',
    );
  });

  it('refuses to delete a snapshot with dependent disks unless forced, and one behind an image always', function () {
    const diskId = attachedDisk();
    const { SnapshotId } = model.CreateSnapshot({ DiskId: diskId }) as { SnapshotId: string };
    now += 3000;
    model.CreateDisk({ RegionId: region, ZoneId: zone, DiskCategory: 'cloud_auto', SnapshotId });
    expect(snapshot(SnapshotId)).to.include({ Usage: 'disk' });
    fails(() => model.DeleteSnapshot({ SnapshotId }), 'SnapshotCreatedDisk', 403);
    fails(() => model.DeleteSnapshot({ SnapshotId, Force: 'false' }), 'SnapshotCreatedDisk', 403);
    model.markUsedByImage(SnapshotId);
    fails(() => model.DeleteSnapshot({ SnapshotId, Force: 'true' }), 'SnapshotCreatedImage', 403);
    model.markUsedByImage(SnapshotId, false);
    model.DeleteSnapshot({ SnapshotId, Force: 'true' });
    fails(() => model.DeleteSnapshot({ SnapshotId }), 'InvalidSnapshotId.NotFound', 404);
  });

  it('finds dependent disks by SnapshotId over NextToken pages', function () {
    const diskId = attachedDisk();
    const { SnapshotId } = model.CreateSnapshot({ DiskId: diskId }) as { SnapshotId: string };
    for (let i = 0; i < 25; i++)
      model.addDisk({ regionId: region, zoneId: zone, sizeGiB: 40, sourceSnapshotId: SnapshotId });
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const body = model.DescribeDisks({
        RegionId: region,
        SnapshotId,
        MaxResults: '10',
        ...(token && { NextToken: token }),
      });
      seen.push(...((body.Disks as Body).Disk as { DiskId: string }[]).map((d) => d.DiskId));
      token = (body.NextToken as string) || undefined;
      pages += 1;
    } while (token);
    expect(pages).to.equal(3);
    expect(new Set(seen).size).to.equal(25);
    const legacy = model.DescribeDisks({ RegionId: region, SnapshotId });
    expect(legacy).to.include({ PageSize: 10, TotalCount: 25 });
  });

  it('accepts at most 100 ids in SnapshotIds', function () {
    const ids = Array.from({ length: 101 }, (_, i) => `s-${i}`);
    fails(
      () => model.DescribeSnapshots({ RegionId: region, SnapshotIds: JSON.stringify(ids) }),
      'InvalidSnapshotIds.Malformed',
    );
  });

  it('resizes only upwards and not while a snapshot is in progress', function () {
    const diskId = attachedDisk();
    fails(() => model.ResizeDisk({ DiskId: diskId, NewSize: '40' }), 'InvalidDiskSize.TooSmall');
    model.CreateSnapshot({ DiskId: diskId });
    fails(
      () => model.ResizeDisk({ DiskId: diskId, NewSize: '80' }),
      'IncorrectDiskStatus.CreatingSnapshot',
    );
    now += 10_000;
    model.ResizeDisk({ DiskId: diskId, NewSize: '80' });
    expect(disk(diskId)).to.include({ Size: 80 });
  });

  it('attaches and detaches disks in the instance zone', function () {
    const instance = model.addInstance(region, zone);
    const other = model.addInstance(region, 'cn-hangzhou-i');
    const { DiskId } = model.CreateDisk({
      RegionId: region,
      ZoneId: zone,
      DiskCategory: 'cloud_auto',
      Size: '10',
    }) as { DiskId: string };
    fails(() => model.AttachDisk({ DiskId, InstanceId: instance.id }), 'IncorrectDiskStatus');
    now += 500;
    fails(() => model.AttachDisk({ DiskId, InstanceId: other.id }), 'InstanceDiskNotSupported');
    model.AttachDisk({ DiskId, InstanceId: instance.id });
    expect(disk(DiskId)).to.include({ Status: 'In_use', InstanceId: instance.id });
    fails(() => model.DeleteDisk({ DiskId }), 'IncorrectDiskStatus');
    model.DetachDisk({ DiskId, InstanceId: instance.id });
    expect(disk(DiskId)).to.include({ Status: 'Available' });
    expect(model.CreateSnapshot({ DiskId })).to.have.property('SnapshotId');
  });

  describe('faults', function () {
    it('limits an API to its rate, with a retry-after that says when the next request fits', function () {
      const faults = new Faults(() => now);
      faults.setRateLimit('CreateSnapshot', { perSecond: 10 });
      for (let i = 0; i < 10; i++) expect(faults.admit('CreateSnapshot')).to.equal(undefined);
      const rejected = faults.admit('CreateSnapshot');
      expect(rejected?.code).to.equal('Throttling.User');
      expect(rejected?.retryAfterMs).to.equal(100);
      expect(faults.admit('DescribeSnapshots')).to.equal(undefined);
      now += 100;
      expect(faults.admit('CreateSnapshot')).to.equal(undefined);
      expect(faults.admit('CreateSnapshot')?.code).to.equal('Throttling.User');
    });

    it('throttles a burst of requests and then lets them through', function () {
      const faults = new Faults(() => now);
      faults.throttleNext({ action: '*', count: 2 });
      expect(faults.admit('DeleteSnapshot')?.code).to.equal('Throttling.User');
      expect(faults.admit('CreateDisk')?.retryAfterMs).to.equal(undefined);
      expect(faults.admit('CreateDisk')).to.equal(undefined);
      expect(faults.injected.throttled).to.equal(2);
    });

    it('throttles every request during a window, telling how long is left when asked to', function () {
      const faults = new Faults(() => now);
      faults.throttleFor({ action: 'DescribeSnapshots', ms: 500, sendRetryAfter: true });
      expect(faults.admit('DescribeSnapshots')?.retryAfterMs).to.equal(500);
      now += 300;
      expect(faults.admit('DescribeSnapshots')?.retryAfterMs).to.equal(200);
      expect(faults.admit('CreateSnapshot')).to.equal(undefined);
      now += 200;
      expect(faults.admit('DescribeSnapshots')).to.equal(undefined);
    });

    it('fails about the requested share of requests with 5xx, reproducibly from the seed', function () {
      const runs = [1, 2].map(() => {
        const faults = new Faults(() => now);
        faults.failRandomly({ rate: 0.2, seed: 7 });
        const outcomes: string[] = [];
        for (let i = 0; i < 1000; i++) {
          const before = faults.decide('CreateSnapshot', 'before').error;
          const after = before ? undefined : faults.decide('CreateSnapshot', 'after').error;
          outcomes.push(before ? `b${before.status}` : after ? `a${after.status}` : 'ok');
        }
        return outcomes;
      });
      expect(runs[0]).to.deep.equal(runs[1]);
      const failed = runs[0]!.filter((o) => o !== 'ok').length;
      expect(failed).to.be.within(140, 240);
      expect(runs[0]!.some((o) => o.startsWith('a5'))).to.equal(true);
      expect(runs[0]!.some((o) => o.startsWith('b5'))).to.equal(true);
    });
  });
});
