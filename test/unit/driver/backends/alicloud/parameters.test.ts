import { expect } from 'chai';
import { DiskError } from '../../../../../src/csi/errors.js';
import { clientToken, fnv1a128 } from '../../../../../src/driver/backends/alicloud/client-token.js';
import type { EcsDisk } from '../../../../../src/driver/backends/alicloud/ecs.js';
import {
  GiB,
  chooseZone,
  diskSizeGiB,
  diskSpec,
  groupSnapshotSpec,
  recordedForceDelete,
  snapshotGroupName,
  snapshotGroupProblem,
  snapshotSpec,
  validSnapshotName,
  zoneTopologyKey,
} from '../../../../../src/driver/backends/alicloud/parameters.js';

function rejects(run: () => unknown, code: string, text: string | RegExp): void {
  try {
    run();
  } catch (error) {
    expect(error).to.be.instanceOf(DiskError);
    expect((error as DiskError).code).to.equal(code);
    if (typeof text === 'string') expect((error as DiskError).message).to.include(text);
    else expect((error as DiskError).message).to.match(text);
    return;
  }
  throw new Error(`expected ${code}`);
}

describe('alicloud parameters', function () {
  describe('clientToken', function () {
    it('uses a short printable name as is, readable in the ECS console', function () {
      expect(clientToken('snapshot-6f0c2b1e-1a2b-4c3d-8e9f-0123456789ab')).to.equal(
        'n:snapshot-6f0c2b1e-1a2b-4c3d-8e9f-0123456789ab',
      );
    });

    it('hashes a long or non-ASCII name into 64 ASCII characters or fewer, deterministically', function () {
      const long = `snapshot-${'x'.repeat(100)}`;
      expect(clientToken(long)).to.match(/^h:[A-Za-z0-9+/=]{24}$/);
      expect(clientToken(long)).to.equal(clientToken(long));
      expect(clientToken(`${long}y`)).to.not.equal(clientToken(long));
      expect(clientToken('快照-1')).to.match(/^h:/);
    });

    it('computes FNV-1a 128 as published', function () {
      expect(fnv1a128(Buffer.from('')).toString('hex')).to.equal(
        '6c62272e07bb014262b821756295c58d',
      );
      expect(fnv1a128(Buffer.from('a')).toString('hex')).to.equal(
        'd228cb696f1a8caf78912b704e4a8964',
      );
    });
  });

  describe('snapshotSpec', function () {
    it('records creator, cluster and forceDelete, the VolumeSnapshot identity, then user tags in key order', function () {
      const spec = snapshotSpec({
        parameters: {
          retentionDays: '7',
          resourceGroupId: 'rg-abc123',
          'snapshotTags/team': 'db',
          'snapshotTags/app': 'mysql',
        },
        metadata: {
          'csi.storage.k8s.io/volumesnapshot/name': 'daily',
          'csi.storage.k8s.io/volumesnapshot/namespace': 'prod',
        },
        forceDelete: true,
        clusterId: 'c-123',
      });
      expect(spec.retentionDays).to.equal(7);
      expect(spec.resourceGroupId).to.equal('rg-abc123');
      expect(Object.entries(spec.tags)).to.deep.equal([
        ['createdby', 'snapback'],
        ['ack.aliyun.com', 'c-123'],
        ['force.delete.snapshot.k8s.aliyun.com', 'true'],
        ['csi.alibabacloud.com/snapshot/name', 'daily'],
        ['csi.alibabacloud.com/snapshot/namespace', 'prod'],
        ['app', 'mysql'],
        ['team', 'db'],
      ]);
      expect(recordedForceDelete(spec.tags)).to.equal(true);
    });

    it('records forceDelete=false explicitly, and reads a missing tag as false', function () {
      const spec = snapshotSpec({ parameters: {}, metadata: {}, forceDelete: false });
      expect(spec.tags['force.delete.snapshot.k8s.aliyun.com']).to.equal('false');
      expect(recordedForceDelete(spec.tags)).to.equal(false);
      expect(recordedForceDelete({})).to.equal(false);
    });

    it('accepts the retired instant-access keys without effect, for old classes', function () {
      const spec = snapshotSpec({
        parameters: { snapshotType: 'default', instantAccessRetentionDays: '1' },
        metadata: {},
        forceDelete: false,
      });
      expect(spec.ignored).to.deep.equal(['snapshotType', 'instantAccessRetentionDays']);
    });

    it('rejects unknown keys, bad retention days, bad resource groups and reserved tag keys', function () {
      const base = { metadata: {}, forceDelete: false };
      rejects(
        () => snapshotSpec({ ...base, parameters: { retention: '7' } }),
        'INVALID_ARGUMENT',
        'unknown VolumeSnapshotClass parameter "retention"',
      );
      rejects(
        () => snapshotSpec({ ...base, parameters: { retentionDays: '0' } }),
        'INVALID_ARGUMENT',
        'from 1 to 65536',
      );
      rejects(
        () => snapshotSpec({ ...base, parameters: { retentionDays: '1.5' } }),
        'INVALID_ARGUMENT',
        'whole number',
      );
      rejects(
        () => snapshotSpec({ ...base, parameters: { resourceGroupId: 'default' } }),
        'INVALID_ARGUMENT',
        'rg-',
      );
      rejects(
        () => snapshotSpec({ ...base, parameters: { 'snapshotTags/aliyun-x': 'v' } }),
        'INVALID_ARGUMENT',
        'not allowed',
      );
      const many = Object.fromEntries(
        Array.from({ length: 19 }, (_, i) => [`snapshotTags/k${i}`, 'v']),
      );
      rejects(
        () => snapshotSpec({ ...base, parameters: many }),
        'INVALID_ARGUMENT',
        'at most 20 tags',
      );
    });

    it('knows which CSI names ECS takes as snapshot names', function () {
      expect(validSnapshotName('snapshot-1f2e')).to.equal(true);
      expect(validSnapshotName('automatic-1')).to.equal(false);
      expect(validSnapshotName('1-snapshot')).to.equal(false);
      expect(validSnapshotName('s')).to.equal(false);
    });
  });

  describe('snapshot-consistent groups', function () {
    const limits = { maxDisks: 16, maxTotalGiB: 32768 };
    const disk = (id: string, fields: Partial<EcsDisk> = {}): EcsDisk => ({
      id,
      zoneId: 'cn-hangzhou-h',
      category: 'cloud_essd',
      performanceLevel: 'PL1',
      sizeGiB: 20,
      status: 'In_use',
      sourceSnapshotId: '',
      instanceId: 'i-1',
      everAttached: true,
      tags: {},
      ...fields,
    });
    const problem = (disks: EcsDisk[]) => {
      const found = snapshotGroupProblem(disks, limits);
      return found && { code: found.code, message: found.message };
    };

    it('accepts ESSD-family disks of one zone, and Regional ESSDs together', function () {
      expect(
        problem([
          disk('d-1'),
          disk('d-2', { category: 'cloud_auto' }),
          disk('d-3', { category: 'cloud_essd_entry' }),
        ]),
      ).to.equal(undefined);
      expect(
        problem([
          disk('d-1', { category: 'cloud_regional_disk_auto', zoneId: '' }),
          disk('d-2', { category: 'cloud_regional_disk_auto', zoneId: '' }),
        ]),
      ).to.equal(undefined);
    });

    const refused: [string, EcsDisk[], RegExp][] = [
      [
        'a disk outside the ESSD family',
        [disk('d-1'), disk('d-2', { category: 'cloud_ssd' })],
        /disk d-2 is cloud_ssd: .*only ESSD-family disks/,
      ],
      [
        'a Regional ESSD beside a zonal disk',
        [disk('d-1'), disk('d-2', { category: 'cloud_regional_disk_auto', zoneId: '' })],
        /disk d-2 is a Regional ESSD and disk d-1 is cloud_essd/,
      ],
      [
        'disks in two zones',
        [disk('d-1'), disk('d-2'), disk('d-3', { zoneId: 'cn-hangzhou-i' })],
        /one zone: d-1, d-2 in cn-hangzhou-h; d-3 in cn-hangzhou-i/,
      ],
      [
        'more than 16 disks',
        Array.from({ length: 17 }, (_, i) => disk(`d-${i}`, { sizeGiB: 1 })),
        /at most 16 disks; this one asks for 17/,
      ],
      [
        'more than 32 TiB in all',
        [disk('d-1', { sizeGiB: 32000 }), disk('d-2', { sizeGiB: 1000 })],
        /at most 32768 GiB; these disks hold 33000 GiB \(d-1 32000 GiB, d-2 1000 GiB\)/,
      ],
    ];
    for (const [what, disks, message] of refused) {
      it(`refuses ${what} with INVALID_ARGUMENT naming the disk and the rule`, function () {
        const found = problem(disks);
        expect(found?.code).to.equal('INVALID_ARGUMENT');
        expect(found?.message).to.match(message);
      });
    }

    it('applies limits other than the defaults', function () {
      const found = snapshotGroupProblem([disk('d-1'), disk('d-2')], {
        maxDisks: 1,
        maxTotalGiB: 100,
      });
      expect(found?.message).to.include('at most 1 disks');
    });

    it('takes the snapshot class parameters, less retentionDays, which ECS groups lack', function () {
      const spec = groupSnapshotSpec({
        parameters: { resourceGroupId: 'rg-abc', 'snapshotTags/team': 'db' },
        metadata: {},
        forceDelete: true,
        clusterId: 'c-1',
      });
      expect(spec.resourceGroupId).to.equal('rg-abc');
      expect(recordedForceDelete(spec.tags)).to.equal(true);
      expect(spec.tags).to.include({ team: 'db', 'ack.aliyun.com': 'c-1' });
      rejects(
        () =>
          groupSnapshotSpec({
            parameters: { retentionDays: '7' },
            metadata: {},
            forceDelete: false,
          }),
        'INVALID_ARGUMENT',
        'retentionDays is not supported for group snapshots',
      );
    });

    it('names the ECS group after the CSI name, or a hash of a name ECS refuses', function () {
      expect(snapshotGroupName('groupsnapshot-1234')).to.equal('groupsnapshot-1234');
      const hashed = snapshotGroupName('1-starts-with-a-digit');
      expect(hashed).to.match(/^snapback-[0-9a-f]{32}$/);
      expect(validSnapshotName(hashed)).to.equal(true);
      expect(snapshotGroupName('1-starts-with-a-digit')).to.equal(hashed);
      expect(snapshotGroupName('2-starts-with-a-digit')).to.not.equal(hashed);
    });
  });

  describe('diskSpec', function () {
    it('defaults to cloud_ssd then cloud_efficiency, like the upstream driver', function () {
      expect(diskSpec({ parameters: {}, metadata: {} }).candidates).to.deep.equal([
        { category: 'cloud_ssd' },
        { category: 'cloud_efficiency' },
      ]);
      expect(
        diskSpec({ parameters: { type: 'available' }, metadata: {} }).candidates,
      ).to.have.length(2);
    });

    it('expands ESSD performance levels and keeps the order of the type list', function () {
      const spec = diskSpec({
        parameters: { type: 'cloud_essd,cloud_auto', performanceLevel: 'PL2,PL1' },
        metadata: {},
      });
      expect(spec.candidates).to.deep.equal([
        { category: 'cloud_essd', performanceLevel: 'PL2' },
        { category: 'cloud_essd', performanceLevel: 'PL1' },
        { category: 'cloud_auto' },
      ]);
    });

    it('parses zones, encryption, KMS key, resource group and both tag forms', function () {
      const spec = diskSpec({
        parameters: {
          type: 'cloud_auto',
          zoneId: 'cn-hangzhou-h, cn-hangzhou-i',
          encrypted: 'true',
          kmsKeyId: 'key-1',
          resourceGroupId: 'rg-9',
          diskTags: 'b:2,a:1',
          'diskTags/c': '3',
        },
        metadata: {
          'csi.storage.k8s.io/pvc/name': 'data-0',
          'csi.storage.k8s.io/pvc/namespace': 'prod',
        },
      });
      expect(spec.zones).to.deep.equal(['cn-hangzhou-h', 'cn-hangzhou-i']);
      expect(spec).to.include({ encrypted: true, kmsKeyId: 'key-1', resourceGroupId: 'rg-9' });
      expect(Object.entries(spec.tags)).to.deep.equal([
        ['createdby', 'snapback'],
        ['kubernetes.io/created-for/pvc/name', 'data-0'],
        ['kubernetes.io/created-for/pvc/namespace', 'prod'],
        ['a', '1'],
        ['b', '2'],
        ['c', '3'],
      ]);
    });

    it('rejects what it cannot honour with the reason', function () {
      const meta = { metadata: {} };
      rejects(
        () => diskSpec({ ...meta, parameters: { size: '10' } }),
        'INVALID_ARGUMENT',
        'unknown StorageClass parameter "size"',
      );
      rejects(
        () => diskSpec({ ...meta, parameters: { multiAttach: 'true' } }),
        'INVALID_ARGUMENT',
        'not supported',
      );
      rejects(
        () => diskSpec({ ...meta, parameters: { type: 'cloud_ssd', performanceLevel: 'PL1' } }),
        'INVALID_ARGUMENT',
        'only to type cloud_essd',
      );
      rejects(
        () => diskSpec({ ...meta, parameters: { type: 'cloud_essd', performanceLevel: 'PL9' } }),
        'INVALID_ARGUMENT',
        'PL0, PL1',
      );
      rejects(
        () => diskSpec({ ...meta, parameters: { type: 'tape' } }),
        'INVALID_ARGUMENT',
        'unsupported disk category tape',
      );
      rejects(
        () => diskSpec({ ...meta, parameters: { encrypted: 'yes' } }),
        'INVALID_ARGUMENT',
        'encrypted',
      );
      rejects(
        () => diskSpec({ ...meta, parameters: { encrypted: 'false', kmsKeyId: 'k' } }),
        'INVALID_ARGUMENT',
        'kmsKeyId',
      );
      rejects(
        () => diskSpec({ ...meta, parameters: { diskTags: 'novalue' } }),
        'INVALID_ARGUMENT',
        'key:value',
      );
    });
  });

  describe('diskSizeGiB', function () {
    const essd = (pl: string) => ({ category: 'cloud_essd', performanceLevel: pl });

    it('rounds up to whole GiB and raises to the category minimum', function () {
      expect(
        diskSizeGiB({ requiredBytes: GiB + 1, limitBytes: 0, category: essd('PL0') }),
      ).to.equal(2);
      expect(
        diskSizeGiB({ requiredBytes: 5 * GiB, limitBytes: 0, category: essd('PL1') }),
      ).to.equal(20);
      expect(
        diskSizeGiB({
          requiredBytes: 0,
          limitBytes: 0,
          category: { category: 'cloud_efficiency' },
        }),
      ).to.equal(20);
      expect(diskSizeGiB({ requiredBytes: 0, limitBytes: 0, category: essd('PL3') })).to.equal(
        1261,
      );
    });

    it('is at least the snapshot source size, and refuses a smaller explicit request', function () {
      expect(
        diskSizeGiB({ requiredBytes: 0, limitBytes: 0, sourceSizeGiB: 40, category: essd('PL0') }),
      ).to.equal(40);
      expect(
        diskSizeGiB({
          requiredBytes: 50 * GiB,
          limitBytes: 0,
          sourceSizeGiB: 40,
          category: essd('PL0'),
        }),
      ).to.equal(50);
      rejects(
        () =>
          diskSizeGiB({
            requiredBytes: 30 * GiB,
            limitBytes: 0,
            sourceSizeGiB: 40,
            category: essd('PL0'),
          }),
        'OUT_OF_RANGE',
        'the snapshot holds a 40 GiB disk',
      );
    });

    it('refuses sizes the limit or the category cannot hold', function () {
      rejects(
        () => diskSizeGiB({ requiredBytes: GiB, limitBytes: 10 * GiB, category: essd('PL1') }),
        'OUT_OF_RANGE',
        'at least 20 GiB',
      );
      rejects(
        () =>
          diskSizeGiB({
            requiredBytes: 40_000 * GiB,
            limitBytes: 0,
            category: { category: 'cloud_ssd' },
          }),
        'OUT_OF_RANGE',
        'at most 32768',
      );
    });
  });

  describe('chooseZone', function () {
    const at = (zone: string) => ({ [zoneTopologyKey]: zone });

    it('takes the CO preferred zone, then the requisite, else the class zone, else the default', function () {
      expect(
        chooseZone({
          accessibility: { preferred: [at('z-b')], requisite: [at('z-a'), at('z-b')] },
          classZones: [],
          defaultZone: 'z-d',
        }),
      ).to.equal('z-b');
      expect(
        chooseZone({
          accessibility: { preferred: [], requisite: [at('z-a')] },
          classZones: [],
          defaultZone: 'z-d',
        }),
      ).to.equal('z-a');
      expect(chooseZone({ classZones: ['z-c'], defaultZone: 'z-d' })).to.equal('z-c');
      expect(chooseZone({ classZones: [], defaultZone: 'z-d' })).to.equal('z-d');
    });

    it('keeps to the class zones, reads the well-known zone key, and refuses no overlap', function () {
      const accessibility = {
        preferred: [{ 'topology.kubernetes.io/zone': 'z-a' }],
        requisite: [at('z-b')],
      };
      expect(chooseZone({ accessibility, classZones: ['z-b'], defaultZone: 'z-d' })).to.equal(
        'z-b',
      );
      expect(chooseZone({ accessibility, classZones: [], defaultZone: 'z-d' })).to.equal('z-a');
      rejects(
        () => chooseZone({ accessibility, classZones: ['z-x'], defaultZone: 'z-d' }),
        'INVALID_ARGUMENT',
        'shares no zone',
      );
    });
  });
});
