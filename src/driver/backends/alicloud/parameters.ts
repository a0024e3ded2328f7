import { invalidArgument, outOfRange, type DiskError } from '../../../csi/errors.js';
import type { Topology, TopologyRequirement } from '../../backend.js';
import { fnv1a128 } from './client-token.js';
import type { EcsDisk, Tags } from './ecs.js';
import {
  PARAM_PVC_NAME,
  PARAM_PVC_NAMESPACE,
  PARAM_PV_NAME,
  PARAM_VOLUME_SNAPSHOT_CONTENT_NAME,
  PARAM_VOLUME_SNAPSHOT_NAME,
  PARAM_VOLUME_SNAPSHOT_NAMESPACE,
} from '../../../api/csi-parameters.js';

/**
 * VolumeSnapshotClass and StorageClass parameters of the Alibaba Cloud disk driver, parsed
 * into ECS request fields. Pure functions: every rule here is unit-tested without ECS.
 */

export const zoneTopologyKey = 'topology.diskplugin.csi.alibabacloud.com/zone';
/** The well-known key, accepted in topology requirements as a synonym. */
const wellKnownZoneKey = 'topology.kubernetes.io/zone';

export const GiB = 2 ** 30;

/** Tag keys the driver writes on what it creates. */
export const tagKeys = {
  creator: 'createdby',
  cluster: 'ack.aliyun.com',
  /** The class's forceDelete value, read back by DeleteSnapshot (the legacy ACK tag key). */
  forceDelete: 'force.delete.snapshot.k8s.aliyun.com',
  snapshotName: 'csi.alibabacloud.com/snapshot/name',
  snapshotNamespace: 'csi.alibabacloud.com/snapshot/namespace',
  snapshotContentName: 'csi.alibabacloud.com/snapshotcontent/name',
  pvName: 'kubernetes.io/created-for/pv/name',
  pvcName: 'kubernetes.io/created-for/pvc/name',
  pvcNamespace: 'kubernetes.io/created-for/pvc/namespace',
} as const;

export const creatorValue = 'snapback';
const maxTags = 20;

/** The tags that mark what this driver (in this cluster) created, for listing. */
export function ownerTags(clusterId: string | undefined): Tags {
  return clusterId
    ? { [tagKeys.creator]: creatorValue, [tagKeys.cluster]: clusterId }
    : { [tagKeys.creator]: creatorValue };
}

function checkUserTag(key: string, value: string, parameter: string): void {
  if (!key || key.length > 128 || /^(aliyun|acs:)/i.test(key) || /^https?:\/\//.test(key)) {
    throw invalidArgument(
      `${parameter}: tag key "${key}" is not allowed (1-128 characters, not starting with aliyun, acs: or http://)`,
    );
  }
  if (value.length > 128 || /^(aliyun|acs:)/i.test(value) || /^https?:\/\//.test(value)) {
    throw invalidArgument(
      `${parameter}: tag value "${value}" is not allowed (at most 128 characters, not starting with aliyun, acs: or http://)`,
    );
  }
}

function positiveInt(value: string, name: string, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > max) {
    throw invalidArgument(
      `parameter ${name} must be a whole number from 1 to ${max}, got "${value}"`,
    );
  }
  return n;
}

function resourceGroup(value: string): string {
  if (!/^rg-[a-z0-9]+$/.test(value)) {
    throw invalidArgument(`parameter resourceGroupId must look like rg-xxxxxxxx, got "${value}"`);
  }
  return value;
}

function addTags(tags: Tags, more: Tags): Tags {
  const merged = { ...tags, ...more };
  if (Object.keys(merged).length > maxTags) {
    throw invalidArgument(
      `ECS allows at most ${maxTags} tags on a resource; these parameters ask for ${Object.keys(merged).length}`,
    );
  }
  return merged;
}

/** Snapshot class keys the upstream driver accepts but that have no effect any more. */
const ignoredSnapshotParameters = new Set([
  'snapshotType',
  'instantAccess',
  'instantAccessRetentionDays',
]);

export interface SnapshotSpec {
  retentionDays?: number;
  resourceGroupId?: string;
  tags: Tags;
  /** Keys accepted for compatibility that change nothing, for a warning. */
  ignored: string[];
}

/**
 * VolumeSnapshotClass parameters -> the CreateSnapshot fields. Tags: the creator, the
 * cluster, the class's forceDelete value, the VolumeSnapshot's identity, then the user's
 * `snapshotTags/<key>` in key order (so the request, and its ClientToken fingerprint, is the
 * same on every call).
 */
export function snapshotSpec(input: {
  parameters: Record<string, string>;
  metadata: Record<string, string>;
  forceDelete: boolean;
  clusterId?: string;
}): SnapshotSpec {
  const spec: SnapshotSpec = { tags: {}, ignored: [] };
  const userTags: Tags = {};
  for (const [key, value] of Object.entries(input.parameters)) {
    if (key === 'retentionDays') spec.retentionDays = positiveInt(value, key, 65536);
    else if (key === 'resourceGroupId') spec.resourceGroupId = resourceGroup(value);
    else if (key.startsWith('snapshotTags/')) {
      const tagKey = key.slice('snapshotTags/'.length);
      checkUserTag(tagKey, value, key);
      userTags[tagKey] = value;
    } else if (ignoredSnapshotParameters.has(key)) spec.ignored.push(key);
    else {
      throw invalidArgument(
        `unknown VolumeSnapshotClass parameter "${key}"; the alicloud backend accepts forceDelete, retentionDays, resourceGroupId and snapshotTags/<key>`,
      );
    }
  }
  const identity: Tags = {};
  const name = input.metadata[PARAM_VOLUME_SNAPSHOT_NAME];
  const namespace = input.metadata[PARAM_VOLUME_SNAPSHOT_NAMESPACE];
  const content = input.metadata[PARAM_VOLUME_SNAPSHOT_CONTENT_NAME];
  if (name) identity[tagKeys.snapshotName] = name;
  if (namespace) identity[tagKeys.snapshotNamespace] = namespace;
  if (content) identity[tagKeys.snapshotContentName] = content;
  let tags: Tags = {
    ...ownerTags(input.clusterId),
    [tagKeys.forceDelete]: String(input.forceDelete),
  };
  tags = addTags(tags, identity);
  const sortedUser = Object.fromEntries(
    Object.entries(userTags).sort(([a], [b]) => (a < b ? -1 : 1)),
  );
  spec.tags = addTags(tags, sortedUser);
  return spec;
}

/** The recorded forceDelete policy of a snapshot, from its tags. */
export function recordedForceDelete(tags: Tags): boolean {
  return tags[tagKeys.forceDelete] === 'true';
}

/** ECS snapshot names: 2-128 characters, starting with a letter, not `auto` or a URL. */
export function validSnapshotName(name: string): boolean {
  return /^[A-Za-z][\w.:-]{1,127}$/.test(name) && !/^(auto|https?:\/\/)/.test(name);
}

// ---- snapshot-consistent groups ----

/**
 * VolumeGroupSnapshotClass parameters -> the CreateSnapshotGroup fields: those of a single
 * snapshot, less retentionDays, which CreateSnapshotGroup does not take.
 */
export function groupSnapshotSpec(input: {
  parameters: Record<string, string>;
  metadata: Record<string, string>;
  forceDelete: boolean;
  clusterId?: string;
}): SnapshotSpec {
  if ('retentionDays' in input.parameters) {
    throw invalidArgument(
      'parameter retentionDays is not supported for group snapshots: ECS CreateSnapshotGroup sets no retention; the alicloud backend accepts forceDelete, resourceGroupId and snapshotTags/<key> here',
    );
  }
  return snapshotSpec(input);
}

/**
 * The ECS name of a group: the CSI name when ECS accepts it (2-128 characters of letters,
 * digits, `.`, `_`, `-`, `:`, starting with a letter), else `snapback-` and its hash, so any
 * CSI name can be looked up by DescribeSnapshotGroups' Name filter.
 */
export function snapshotGroupName(name: string): string {
  return validSnapshotName(name)
    ? name
    : `snapback-${fnv1a128(Buffer.from(name, 'utf8')).toString('hex')}`;
}

export interface SnapshotGroupLimits {
  maxDisks: number;
  maxTotalGiB: number;
}

/**
 * ECS's limits on one snapshot-consistent group in most regions (CreateSnapshotGroup API
 * reference): 16 disks, 32 TiB in all. Some regions differ: --group-snapshot-max-disks and
 * --group-snapshot-max-gib override them.
 */
export const defaultSnapshotGroupLimits: SnapshotGroupLimits = { maxDisks: 16, maxTotalGiB: 32768 };

/** The disks a snapshot-consistent group takes (Regional ESSDs only with each other). */
export const snapshotGroupCategories = [
  'cloud_essd',
  'cloud_auto',
  'cloud_essd_entry',
  'cloud_regional_disk_auto',
];

/** More disks than a group may hold, before any is looked up. */
export function groupSizeProblem(
  diskIds: string[],
  limits: SnapshotGroupLimits,
): DiskError | undefined {
  if (diskIds.length <= limits.maxDisks) return undefined;
  return invalidArgument(
    `an ECS snapshot-consistent group holds at most ${limits.maxDisks} disks; this one asks for ${diskIds.length} (${diskIds.join(', ')}): split the volumes into several groups`,
  );
}

/**
 * Why ECS would refuse to snapshot these disks as one group, naming the disk and the rule;
 * undefined when every rule that DescribeDisks can tell is met. `disks` are in request order.
 */
export function snapshotGroupProblem(
  disks: EcsDisk[],
  limits: SnapshotGroupLimits,
): DiskError | undefined {
  const sizeProblem = groupSizeProblem(
    disks.map((d) => d.id),
    limits,
  );
  if (sizeProblem) return sizeProblem;
  for (const disk of disks) {
    if (!snapshotGroupCategories.includes(disk.category)) {
      return invalidArgument(
        `disk ${disk.id} is ${disk.category}: ECS snapshot-consistent groups take only ESSD-family disks (${snapshotGroupCategories.join(', ')})`,
      );
    }
  }
  const regional = disks.filter((d) => isRegional(d.category));
  if (regional.length > 0 && regional.length < disks.length) {
    const zonal = disks.filter((d) => !isRegional(d.category));
    return invalidArgument(
      `disk ${regional[0]!.id} is a Regional ESSD and disk ${zonal[0]!.id} is ${zonal[0]!.category}: ECS groups Regional ESSDs only with other Regional ESSDs`,
    );
  }
  const zones = new Map<string, string[]>();
  for (const disk of disks) {
    if (isRegional(disk.category)) continue;
    zones.set(disk.zoneId, [...(zones.get(disk.zoneId) ?? []), disk.id]);
  }
  if (zones.size > 1) {
    const where = [...zones].map(([zone, ids]) => `${ids.join(', ')} in ${zone}`).join('; ');
    return invalidArgument(
      `the disks of an ECS snapshot-consistent group must be in one zone: ${where}`,
    );
  }
  const totalGiB = disks.reduce((sum, d) => sum + d.sizeGiB, 0);
  if (totalGiB > limits.maxTotalGiB) {
    return invalidArgument(
      `an ECS snapshot-consistent group holds at most ${limits.maxTotalGiB} GiB; these disks hold ${totalGiB} GiB (${disks.map((d) => `${d.id} ${d.sizeGiB} GiB`).join(', ')})`,
    );
  }
  return undefined;
}

// ---- disks ----

export interface Category {
  category: string;
  performanceLevel?: string;
}

const minimumGiB: Record<string, number> = {
  cloud_efficiency: 20,
  cloud_ssd: 20,
  'cloud_essd:PL0': 1,
  'cloud_essd:PL1': 20,
  'cloud_essd:PL2': 461,
  'cloud_essd:PL3': 1261,
  cloud_auto: 1,
  cloud_essd_entry: 10,
  cloud_regional_disk_auto: 10,
  cloud_essd_xc0: 40,
  cloud_essd_xc1: 40,
};

const maximumGiB = 32768;
const essdMaximumGiB = 65536;

export function categoryLimits(c: Category): { minGiB: number; maxGiB: number } {
  const key = c.performanceLevel ? `${c.category}:${c.performanceLevel}` : c.category;
  const minGiB = minimumGiB[key];
  if (minGiB === undefined)
    throw invalidArgument(`unsupported disk category ${key.replace(':', ' ')}`);
  const large = c.category.startsWith('cloud_essd') || c.category.endsWith('_auto');
  return {
    minGiB,
    maxGiB: large && c.category !== 'cloud_essd_entry' ? essdMaximumGiB : maximumGiB,
  };
}

export const isRegional = (category: string): boolean => category === 'cloud_regional_disk_auto';

export interface DiskSpec {
  /** Categories to try in order, each with its performance level. */
  candidates: Category[];
  /** Zones from the StorageClass `zoneId`, if any. */
  zones: string[];
  encrypted?: boolean;
  kmsKeyId?: string;
  resourceGroupId?: string;
  tags: Tags;
}

const unsupportedDiskParameters = new Set([
  'regionId',
  'storageClusterId',
  'multiAttach',
  'readOnly',
  'provisionedIops',
  'burstingEnabled',
  'volumeSizeAutoAvailable',
  'volumeDeleteSnapshotRetentionDays',
  'restrictToHpnZone',
  'dataCacheMode',
  'dataCacheSize',
  'alibabacloud.com/createdisk-arn',
]);

function list(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** StorageClass parameters -> the CreateDisk fields. */
export function diskSpec(input: {
  parameters: Record<string, string>;
  metadata: Record<string, string>;
  clusterId?: string;
}): DiskSpec {
  let types = ['cloud_ssd', 'cloud_efficiency'];
  let levels: string[] = [];
  let zones: string[] = [];
  const spec: Omit<DiskSpec, 'candidates' | 'zones'> = { tags: {} };
  const userTags: Tags = {};
  for (const [key, value] of Object.entries(input.parameters)) {
    switch (key) {
      case 'type':
        if (value && value !== 'available') types = list(value);
        break;
      case 'performanceLevel':
        levels = list(value);
        break;
      case 'zoneId':
        zones = list(value);
        break;
      case 'encrypted':
        if (value !== 'true' && value !== 'false')
          throw invalidArgument(`parameter encrypted must be "true" or "false", got "${value}"`);
        spec.encrypted = value === 'true';
        break;
      case 'kmsKeyId':
        spec.kmsKeyId = value;
        break;
      case 'resourceGroupId':
        spec.resourceGroupId = resourceGroup(value);
        break;
      case 'diskTags':
        for (const pair of list(value)) {
          const at = pair.indexOf(':');
          if (at <= 0)
            throw invalidArgument(
              `parameter diskTags takes key:value pairs separated by commas, got "${pair}"`,
            );
          userTags[pair.slice(0, at)] = pair.slice(at + 1);
        }
        break;
      default:
        if (key.startsWith('diskTags/')) {
          userTags[key.slice('diskTags/'.length)] = value;
        } else if (unsupportedDiskParameters.has(key)) {
          throw invalidArgument(
            `StorageClass parameter "${key}" is not supported by the snapback alicloud backend`,
          );
        } else {
          throw invalidArgument(
            `unknown StorageClass parameter "${key}"; the alicloud backend accepts type, performanceLevel, zoneId, encrypted, kmsKeyId, resourceGroupId, diskTags and diskTags/<key>`,
          );
        }
    }
  }
  if (spec.kmsKeyId && spec.encrypted === false) {
    throw invalidArgument('parameter kmsKeyId needs encrypted "true"');
  }
  for (const level of levels) {
    if (!/^PL[0-3]$/.test(level))
      throw invalidArgument(`performanceLevel must be PL0, PL1, PL2 or PL3, got "${level}"`);
  }
  if (levels.length > 0 && !types.includes('cloud_essd')) {
    throw invalidArgument('performanceLevel applies only to type cloud_essd');
  }
  const candidates: Category[] = [];
  for (const category of types) {
    if (category === 'cloud_essd') {
      for (const level of levels.length > 0 ? levels : ['PL1'])
        candidates.push({ category, performanceLevel: level });
    } else candidates.push({ category });
  }
  for (const c of candidates) categoryLimits(c);
  for (const [key, value] of Object.entries(userTags)) checkUserTag(key, value, 'diskTags');
  const identity: Tags = {};
  const pv = input.metadata[PARAM_PV_NAME];
  const pvc = input.metadata[PARAM_PVC_NAME];
  const pvcNamespace = input.metadata[PARAM_PVC_NAMESPACE];
  if (pv) identity[tagKeys.pvName] = pv;
  if (pvc) identity[tagKeys.pvcName] = pvc;
  if (pvcNamespace) identity[tagKeys.pvcNamespace] = pvcNamespace;
  const sortedUser = Object.fromEntries(
    Object.entries(userTags).sort(([a], [b]) => (a < b ? -1 : 1)),
  );
  const tags = addTags(addTags(ownerTags(input.clusterId), identity), sortedUser);
  return { ...spec, tags, candidates, zones };
}

/**
 * The disk size in GiB: at least what was asked for, the snapshot's source size and the
 * category's minimum; OUT_OF_RANGE when that cannot fit under the limit.
 */
export function diskSizeGiB(input: {
  requiredBytes: number;
  limitBytes: number;
  sourceSizeGiB?: number;
  category: Category;
}): number {
  const { minGiB, maxGiB } = categoryLimits(input.category);
  const source = input.sourceSizeGiB ?? 0;
  if (
    input.sourceSizeGiB !== undefined &&
    input.requiredBytes > 0 &&
    input.requiredBytes < source * GiB
  ) {
    throw outOfRange(
      `the volume asks for ${input.requiredBytes} bytes but the snapshot holds a ${source} GiB disk; ask for at least ${source * GiB} bytes`,
    );
  }
  const size = Math.max(Math.ceil(input.requiredBytes / GiB), source, minGiB);
  if (input.limitBytes > 0 && size * GiB > input.limitBytes) {
    throw outOfRange(
      `a ${describeCategory(input.category)} disk needs at least ${size} GiB, more than the limit of ${input.limitBytes} bytes`,
    );
  }
  if (size > maxGiB)
    throw outOfRange(
      `a ${describeCategory(input.category)} disk holds at most ${maxGiB} GiB, asked for ${size} GiB`,
    );
  return size;
}

export function describeCategory(c: Category): string {
  return c.performanceLevel ? `${c.category} ${c.performanceLevel}` : c.category;
}

function zonesIn(topologies: Topology[]): string[] {
  return topologies
    .map((t) => t[zoneTopologyKey] ?? t[wellKnownZoneKey])
    .filter((z): z is string => Boolean(z));
}

/**
 * The zone for a new zonal disk: the CO's preferred zones first, then its requisite ones,
 * kept to the StorageClass's zones when it lists some; without a requirement, the first
 * StorageClass zone or the driver's own zone.
 */
export function chooseZone(input: {
  accessibility?: TopologyRequirement;
  classZones: string[];
  defaultZone: string;
}): string {
  const requested = [
    ...zonesIn(input.accessibility?.preferred ?? []),
    ...zonesIn(input.accessibility?.requisite ?? []),
  ];
  if (requested.length === 0) return input.classZones[0] ?? input.defaultZone;
  const allowed =
    input.classZones.length > 0 ? requested.filter((z) => input.classZones.includes(z)) : requested;
  const zone = allowed[0];
  if (!zone) {
    throw invalidArgument(
      `the StorageClass zoneId (${input.classZones.join(', ')}) shares no zone with the requested topology (${[...new Set(requested)].join(', ')})`,
    );
  }
  return zone;
}
