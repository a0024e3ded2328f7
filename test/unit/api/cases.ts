/**
 * One table of manifests, valid and invalid, shared by the zod unit tests and the tests
 * against the API server: both must reach the verdict written here, and a rejection must
 * name the offending field (`names`, a substring of the API server's message).
 */
import {
  API_VERSION,
  BACKUP_POLICY_KIND,
  RESTORE_JOB_KIND,
  SNAPSHOT_API_VERSION,
  VOLUME_SNAPSHOT_KIND,
} from '../../../src/api/index.js';

export type Kind =
  typeof BACKUP_POLICY_KIND | typeof RESTORE_JOB_KIND | typeof VOLUME_SNAPSHOT_KIND;

export interface ManifestCase {
  name: string;
  kind: Kind;
  manifest: Record<string, unknown>;
  valid: boolean;
  /** For an invalid case: text the rejection must contain to point at the offending field. */
  names?: string;
}

type Spec = Record<string, unknown>;

const BASE_POLICY: Spec = {
  pvcNames: ['data'],
  schedule: '0 2 * * *',
  retention: { keepLast: 3 },
};

const BASE_RESTORE: Spec = {
  source: { volumeSnapshotName: 'data-snap' },
  target: { pvcName: 'data-restored' },
};

function without(spec: Spec, ...keys: string[]): Spec {
  return Object.fromEntries(Object.entries(spec).filter(([key]) => !keys.includes(key)));
}

let counter = 0;
const uniqueName = (prefix: string) => `${prefix}-${++counter}`;

export function backupPolicy(spec: Spec): Record<string, unknown> {
  return {
    apiVersion: API_VERSION,
    kind: BACKUP_POLICY_KIND,
    metadata: { name: uniqueName('bp') },
    spec,
  };
}

export function restoreJob(spec: Spec): Record<string, unknown> {
  return {
    apiVersion: API_VERSION,
    kind: RESTORE_JOB_KIND,
    metadata: { name: uniqueName('rj') },
    spec,
  };
}

export function volumeSnapshot(spec: Spec | undefined): Record<string, unknown> {
  return {
    apiVersion: SNAPSHOT_API_VERSION,
    kind: VOLUME_SNAPSHOT_KIND,
    metadata: { name: uniqueName('vs') },
    ...(spec === undefined ? {} : { spec }),
  };
}

const policy = (name: string, spec: Spec, valid: boolean, names?: string): ManifestCase => ({
  name,
  kind: BACKUP_POLICY_KIND,
  manifest: backupPolicy(spec),
  valid,
  names,
});

const restore = (name: string, spec: Spec, valid: boolean, names?: string): ManifestCase => ({
  name,
  kind: RESTORE_JOB_KIND,
  manifest: restoreJob(spec),
  valid,
  names,
});

const snapshot = (name: string, spec: Spec | undefined, names: string): ManifestCase => ({
  name,
  kind: VOLUME_SNAPSHOT_KIND,
  manifest: volumeSnapshot(spec),
  valid: false,
  names,
});

const retention = (rules: Spec) => ({ ...BASE_POLICY, retention: rules });
const template = (fields: Spec) => ({ ...BASE_POLICY, snapshotClass: { template: fields } });
const target = (fields: Spec) => ({
  ...BASE_RESTORE,
  target: { pvcName: 'data-restored', ...fields },
});
const SWAP_TARGET = { workload: { kind: 'StatefulSet', name: 'web' } };
const SWAP: Spec = {
  mode: 'Swap',
  source: { backupPolicy: { name: 'nightly' } },
  target: { workload: SWAP_TARGET.workload },
};

const fromPolicy = (fields: Spec) => ({
  ...BASE_RESTORE,
  source: { backupPolicy: { name: 'nightly', pvcName: 'data', ...fields } },
});
const fromGroup = (targetFields: Spec) => ({
  source: { backupPolicy: { name: 'nightly' } },
  target: targetFields,
});
const hooks = (value: Spec) => ({ ...BASE_POLICY, hooks: value });
const preHook = (fields: Spec) =>
  hooks({ pre: [{ container: 'db', command: ['sync'], ...fields }] });
const selector = (value: unknown) => ({ ...without(BASE_POLICY, 'pvcNames'), selector: value });

export const VALID_CASES: ManifestCase[] = [
  policy('the minimal policy', BASE_POLICY, true),
  policy(
    'pre and post hooks',
    hooks({
      pre: [{ container: 'db', command: ['sh', '-c', 'sync'], timeoutSeconds: 10 }],
      post: [{ container: 'db', command: ['true'], onError: 'Continue' }],
    }),
    true,
  ),
  policy('a matchLabels selector', selector({ matchLabels: { app: 'web' } }), true),
  policy('an empty selector (every PVC)', selector({}), true),
  policy(
    'matchExpressions with In and Exists',
    selector({
      matchExpressions: [
        { key: 'app.kubernetes.io/name', operator: 'In', values: ['web', 'db'] },
        { key: 'tier', operator: 'Exists' },
      ],
    }),
    true,
  ),
  policy('@daily', { ...BASE_POLICY, schedule: '@daily' }, true),
  policy('every 15 minutes', { ...BASE_POLICY, schedule: '*/15 * * * *' }, true),
  policy('weekdays', { ...BASE_POLICY, schedule: '30 2 * * 1-5' }, true),
  policy('weekday names', { ...BASE_POLICY, schedule: '30 2 * * MON-fri' }, true),
  policy('month names and Sunday as 7', { ...BASE_POLICY, schedule: '0 3 1 jan,JUL 7' }, true),
  policy('@yearly', { ...BASE_POLICY, schedule: '@yearly' }, true),
  policy('lists, ranges and steps', { ...BASE_POLICY, schedule: '5,35 */2 1-15/2 1,6,12 0' }, true),
  policy('a nested time zone', { ...BASE_POLICY, timeZone: 'America/Argentina/Salta' }, true),
  policy(
    'a deadline and suspend',
    { ...BASE_POLICY, startingDeadlineSeconds: 60, suspend: true },
    true,
  ),
  policy(
    'concurrency Allow and a ready deadline',
    { ...BASE_POLICY, concurrencyPolicy: 'Allow', readyDeadlineSeconds: 7200 },
    true,
  ),
  policy('concurrency Forbid', { ...BASE_POLICY, concurrencyPolicy: 'Forbid' }, true),
  policy('an existing class', { ...BASE_POLICY, snapshotClass: { name: 'csi-snapclass' } }, true),
  policy(
    'a class template with parameters',
    template({
      driver: 'diskplugin.csi.alibabacloud.com',
      deletionPolicy: 'Retain',
      forceDelete: true,
      parameters: { instantAccess: 'true' },
    }),
    true,
  ),
  policy(
    'a class template with every allowed alicloud parameter',
    template({
      driver: 'diskplugin.csi.alibabacloud.com',
      parameters: {
        resourceGroupId: 'rg-aekz1234',
        'snapshotTags/team': 'a',
        snapshotType: 'standard',
        instantAccess: 'true',
        instantAccessRetentionDays: '1',
      },
    }),
    true,
  ),
  policy(
    'a class template for another driver with its own parameters',
    template({ driver: 'ebs.csi.aws.com', parameters: { tagSpecification_1: 'team=a' } }),
    true,
  ),
  policy(
    'an existing class by name, whatever its parameters (the administrator’s)',
    { ...BASE_POLICY, snapshotClass: { name: 'admin-class-with-secrets' } },
    true,
  ),
  policy(
    'GFS tiers with maxAge and minReady',
    retention({
      hourly: 24,
      daily: 7,
      weekly: 4,
      monthly: 12,
      yearly: 2,
      maxAge: '1w2d12h',
      minReady: 3,
    }),
    true,
  ),
  policy('no retention (keep every snapshot)', without(BASE_POLICY, 'retention'), true),
  policy('keepLast 0 with maxAge', retention({ keepLast: 0, maxAge: '30d' }), true),
  restore('a VolumeSnapshot source', BASE_RESTORE, true),
  restore('a pending deadline', { ...BASE_RESTORE, pendingDeadlineSeconds: 60 }, true),
  restore('a Swap of a StatefulSet from a policy', SWAP, true),
  restore(
    'a Swap of one PVC of a StatefulSet, with a ready timeout',
    {
      ...SWAP,
      source: { backupPolicy: { name: 'nightly', pvcName: 'data-web-0' } },
      readyTimeoutSeconds: 120,
    },
    true,
  ),
  restore('a policy source at latest by default', fromPolicy({}), true),
  restore('every member of a group, suffixed', fromGroup({ pvcNameSuffix: '-restored' }), true),
  restore(
    'every member of a group at a time',
    {
      source: { backupPolicy: { name: 'nightly', at: '2025-06-01T02:00:00Z' } },
      target: { pvcNameSuffix: '-r1' },
    },
    true,
  ),
  restore(
    'one PVC of a policy into a suffixed name',
    { ...fromPolicy({}), target: { pvcNameSuffix: '-restored' } },
    true,
  ),
  restore(
    'a pvcNameSuffix of 63 characters',
    fromGroup({ pvcNameSuffix: `-${'r'.repeat(62)}` }),
    true,
  ),
  restore('a pvcNameSuffix of one digit', fromGroup({ pvcNameSuffix: '2' }), true),
  restore('a policy source at a UTC time', fromPolicy({ at: '2025-06-01T02:00:00Z' }), true),
  restore(
    'a policy source at a time with fraction and offset',
    fromPolicy({ at: '2025-06-01T02:00:00.5+08:00' }),
    true,
  ),
  restore('size 20Gi', target({ size: '20Gi' }), true),
  restore('size as an integer of bytes', target({ size: 1073741824 }), true),
  restore('size 1.5Ti', target({ size: '1.5Ti' }), true),
  restore('size with a decimal exponent', target({ size: '1e9' }), true),
  restore(
    'every target field',
    target({
      storageClassName: 'alicloud-disk-ssd',
      accessModes: ['ReadWriteOnce', 'ReadOnlyMany'],
      labels: { app: 'web', 'example.com/restored': 'yes' },
      annotations: { 'example.com/owner': 'team a' },
    }),
    true,
  ),
  policy(
    'consistency Group over a selector',
    { ...selector({ matchLabels: { app: 'db' } }), consistency: 'Group' },
    true,
  ),
  policy(
    'consistency Group with an existing group class',
    {
      ...selector({ matchLabels: { app: 'db' } }),
      consistency: 'Group',
      groupSnapshotClass: { name: 'csi-groupclass' },
    },
    true,
  ),
  policy(
    'consistency Group with a group class template',
    {
      ...selector({ matchLabels: { app: 'db' } }),
      consistency: 'Group',
      groupSnapshotClass: {
        template: { driver: 'local.snapback.dev', deletionPolicy: 'Delete', parameters: {} },
      },
    },
    true,
  ),
  policy('consistency Volume with pvcNames', { ...BASE_POLICY, consistency: 'Volume' }, true),
];

export const INVALID_CASES: ManifestCase[] = [
  // BackupPolicy: hooks
  policy('a hook with an empty command', preHook({ command: [] }), false, 'command'),
  policy('a hook with an unknown onError', preHook({ onError: 'Abort' }), false, 'onError'),
  policy('a hook naming no container', preHook({ container: 'DB_1' }), false, 'container'),
  policy('a hook with timeoutSeconds 0', preHook({ timeoutSeconds: 0 }), false, 'timeoutSeconds'),
  // BackupPolicy: which PVCs
  policy(
    'neither selector nor pvcNames',
    without(BASE_POLICY, 'pvcNames'),
    false,
    'selector or pvcNames',
  ),
  policy(
    'both selector and pvcNames',
    { ...BASE_POLICY, selector: { matchLabels: { app: 'web' } } },
    false,
    'selector or pvcNames',
  ),
  policy('empty pvcNames', { ...BASE_POLICY, pvcNames: [] }, false, 'spec.pvcNames'),
  policy(
    'a repeated PVC name',
    { ...BASE_POLICY, pvcNames: ['data', 'data'] },
    false,
    'spec.pvcNames',
  ),
  policy(
    'a PVC name with capitals',
    { ...BASE_POLICY, pvcNames: ['Data'] },
    false,
    'spec.pvcNames[0]',
  ),
  policy(
    'In without values',
    selector({ matchExpressions: [{ key: 'app', operator: 'In' }] }),
    false,
    'spec.selector.matchExpressions[0].values',
  ),
  policy(
    'Exists with values',
    selector({ matchExpressions: [{ key: 'app', operator: 'Exists', values: ['web'] }] }),
    false,
    'spec.selector.matchExpressions[0].values',
  ),
  policy(
    'an unknown selector operator',
    selector({ matchExpressions: [{ key: 'app', operator: 'Equals', values: ['web'] }] }),
    false,
    'spec.selector.matchExpressions[0].operator',
  ),
  policy(
    'a label value with a space',
    selector({ matchLabels: { app: 'my web' } }),
    false,
    'spec.selector.matchLabels',
  ),
  policy(
    'a malformed label key',
    selector({ matchLabels: { 'my app': 'web' } }),
    false,
    'spec.selector.matchLabels',
  ),
  // BackupPolicy: when
  policy('no schedule', without(BASE_POLICY, 'schedule'), false, 'spec.schedule'),
  policy('a 4-field schedule', { ...BASE_POLICY, schedule: '0 2 * *' }, false, 'spec.schedule'),
  policy('minute 60', { ...BASE_POLICY, schedule: '60 * * * *' }, false, 'spec.schedule'),
  policy('hour 24', { ...BASE_POLICY, schedule: '0 24 * * *' }, false, 'spec.schedule'),
  policy('a step of 0', { ...BASE_POLICY, schedule: '*/0 * * * *' }, false, 'spec.schedule'),
  policy('an unsupported macro', { ...BASE_POLICY, schedule: '@reboot' }, false, 'spec.schedule'),
  policy('a full day name', { ...BASE_POLICY, schedule: '0 2 * * MONDAY' }, false, 'spec.schedule'),
  policy('day of week 8', { ...BASE_POLICY, schedule: '0 2 * * 8' }, false, 'spec.schedule'),
  policy(
    'words for a schedule',
    { ...BASE_POLICY, schedule: 'every night' },
    false,
    'spec.schedule',
  ),
  policy('a 6-field schedule', { ...BASE_POLICY, schedule: '0 0 2 * * *' }, false, 'spec.schedule'),
  policy(
    'a relative time-zone path',
    { ...BASE_POLICY, timeZone: '../etc/passwd' },
    false,
    'spec.timeZone',
  ),
  policy(
    'a zero deadline',
    { ...BASE_POLICY, startingDeadlineSeconds: 0 },
    false,
    'spec.startingDeadlineSeconds',
  ),
  policy(
    'a deadline as text',
    { ...BASE_POLICY, startingDeadlineSeconds: '60' },
    false,
    'spec.startingDeadlineSeconds',
  ),
  policy('suspend as text', { ...BASE_POLICY, suspend: 'yes' }, false, 'spec.suspend'),
  policy(
    'concurrency Replace (it would delete a run in progress)',
    { ...BASE_POLICY, concurrencyPolicy: 'Replace' },
    false,
    'spec.concurrencyPolicy',
  ),
  policy(
    'a zero ready deadline',
    { ...BASE_POLICY, readyDeadlineSeconds: 0 },
    false,
    'spec.readyDeadlineSeconds',
  ),
  // BackupPolicy: snapshot class
  policy(
    'an empty snapshotClass',
    { ...BASE_POLICY, snapshotClass: {} },
    false,
    'snapshotClass.name or snapshotClass.template',
  ),
  policy(
    'both name and template',
    { ...BASE_POLICY, snapshotClass: { name: 'a', template: { driver: 'local.snapback.dev' } } },
    false,
    'snapshotClass.name or snapshotClass.template',
  ),
  policy(
    'a template without driver',
    template({ forceDelete: true }),
    false,
    'spec.snapshotClass.template.driver',
  ),
  policy(
    'a malformed driver',
    template({ driver: 'disk plugin' }),
    false,
    'spec.snapshotClass.template.driver',
  ),
  policy(
    'an unknown deletionPolicy',
    template({ driver: 'local.snapback.dev', deletionPolicy: 'Keep' }),
    false,
    'spec.snapshotClass.template.deletionPolicy',
  ),
  policy(
    'forceDelete as text',
    template({ driver: 'local.snapback.dev', forceDelete: 'true' }),
    false,
    'spec.snapshotClass.template.forceDelete',
  ),
  policy(
    'forceDelete among the parameters',
    template({ driver: 'local.snapback.dev', parameters: { forceDelete: 'true' } }),
    false,
    'spec.snapshotClass.template.parameters',
  ),
  policy(
    'a snapshotter secret among the template parameters',
    template({
      driver: 'diskplugin.csi.alibabacloud.com',
      parameters: {
        'csi.storage.k8s.io/snapshotter-secret-name': 'ecs-key',
        'csi.storage.k8s.io/snapshotter-secret-namespace': 'kube-system',
      },
    }),
    false,
    'parameters must not contain csi.storage.k8s.io/ keys: they name Secrets',
  ),
  policy(
    'a list secret among the template parameters of another driver',
    template({
      driver: 'ebs.csi.aws.com',
      parameters: { 'csi.storage.k8s.io/snapshotter-list-secret-name': 'aws-key' },
    }),
    false,
    'parameters must not contain csi.storage.k8s.io/ keys',
  ),
  policy(
    'retentionDays in an alicloud template',
    template({ driver: 'diskplugin.csi.alibabacloud.com', parameters: { retentionDays: '7' } }),
    false,
    'parameters must not contain retentionDays: ECS would delete the snapshots',
  ),
  policy(
    'an unknown alicloud template parameter',
    template({ driver: 'diskplugin.csi.alibabacloud.com', parameters: { category: 'cloud_ssd' } }),
    false,
    'parameters for diskplugin.csi.alibabacloud.com may contain only resourceGroupId',
  ),
  policy(
    'a parameter for the local driver',
    template({ driver: 'local.snapback.dev', parameters: { tier: 'gold' } }),
    false,
    'parameters must be empty for local.snapback.dev',
  ),
  // BackupPolicy: retention
  policy('a zero maxAge', retention({ maxAge: '0d' }), false, 'spec.retention.maxAge'),
  policy('a retention without rules', retention({ minReady: 2 }), false, 'spec.retention'),
  policy('a negative keepLast', retention({ keepLast: -1 }), false, 'spec.retention.keepLast'),
  policy('a fractional keepLast', retention({ keepLast: 1.5 }), false, 'spec.retention.keepLast'),
  policy('a daily tier as text', retention({ daily: 'seven' }), false, 'spec.retention.daily'),
  policy('maxAge in words', retention({ maxAge: '30 days' }), false, 'spec.retention.maxAge'),
  policy('a fractional maxAge', retention({ maxAge: '1.5h' }), false, 'spec.retention.maxAge'),
  policy('minReady 0', retention({ keepLast: 3, minReady: 0 }), false, 'spec.retention.minReady'),
  policy('an unknown spec field', { ...BASE_POLICY, keep: 3 }, false, 'spec.keep'),
  // RestoreJob: source
  restore('no source', without(BASE_RESTORE, 'source'), false, 'spec.source'),
  restore(
    'an empty source',
    { ...BASE_RESTORE, source: {} },
    false,
    'source.volumeSnapshotName or source.backupPolicy',
  ),
  restore(
    'two sources',
    {
      ...BASE_RESTORE,
      source: { volumeSnapshotName: 'a', backupPolicy: { name: 'p', pvcName: 'data' } },
    },
    false,
    'source.volumeSnapshotName or source.backupPolicy',
  ),
  restore(
    'an empty snapshot name',
    { ...BASE_RESTORE, source: { volumeSnapshotName: '' } },
    false,
    'spec.source.volumeSnapshotName',
  ),
  restore(
    'a policy source without pvcName, to one target.pvcName',
    { ...BASE_RESTORE, source: { backupPolicy: { name: 'nightly' } } },
    false,
    'set target.pvcNameSuffix',
  ),
  restore(
    'a pvcNameSuffix with a VolumeSnapshot source',
    { ...BASE_RESTORE, target: { pvcNameSuffix: '-restored' } },
    false,
    'spec.target.pvcNameSuffix',
  ),
  restore('at in words', fromPolicy({ at: 'yesterday' }), false, 'spec.source.backupPolicy.at'),
  restore(
    'at in month 13',
    fromPolicy({ at: '2025-13-01T00:00:00Z' }),
    false,
    'spec.source.backupPolicy.at',
  ),
  restore(
    'at without T',
    fromPolicy({ at: '2025-06-01 02:00:00Z' }),
    false,
    'spec.source.backupPolicy.at',
  ),
  restore(
    'at without an offset',
    fromPolicy({ at: '2025-06-01T02:00:00' }),
    false,
    'spec.source.backupPolicy.at',
  ),
  restore(
    'at as a date only',
    fromPolicy({ at: '2025-06-01' }),
    false,
    'spec.source.backupPolicy.at',
  ),
  restore(
    'a zero pending deadline',
    { ...BASE_RESTORE, pendingDeadlineSeconds: 0 },
    false,
    'spec.pendingDeadlineSeconds',
  ),
  // RestoreJob: mode Swap
  restore(
    'mode Swap without a workload',
    { ...SWAP, target: { pvcName: 'data-restored' } },
    false,
    'mode Swap restores in place and needs target.workload',
  ),
  restore(
    'a workload with mode New',
    { ...SWAP, mode: 'New' },
    false,
    'target.workload needs mode Swap',
  ),
  restore(
    'a workload and a pvcName',
    { ...SWAP, target: { ...SWAP_TARGET, pvcName: 'data-restored' } },
    false,
    'exactly one of target.pvcName, target.pvcNameSuffix or target.workload',
  ),
  restore(
    'mode Swap from a VolumeSnapshot',
    { ...SWAP, source: { volumeSnapshotName: 'snap' } },
    false,
    "mode Swap restores each PVC of the workload from a BackupPolicy's snapshots",
  ),
  restore(
    'a workload of kind Deployment',
    { ...SWAP, target: { workload: { kind: 'Deployment', name: 'web' } } },
    false,
    'spec.target.workload.kind',
  ),
  restore('an unknown mode', { ...SWAP, mode: 'InPlace' }, false, 'spec.mode'),
  restore(
    'a zero ready timeout',
    { ...SWAP, readyTimeoutSeconds: 0 },
    false,
    'spec.readyTimeoutSeconds',
  ),
  // RestoreJob: target
  restore('no target', without(BASE_RESTORE, 'target'), false, 'spec.target'),
  restore(
    'a target without pvcName or pvcNameSuffix',
    { ...BASE_RESTORE, target: { size: '1Gi' } },
    false,
    'exactly one of target.pvcName, target.pvcNameSuffix or target.workload',
  ),
  restore(
    'a target with both pvcName and pvcNameSuffix',
    {
      ...fromPolicy({}),
      target: { pvcName: 'data-restored', pvcNameSuffix: '-restored' },
    },
    false,
    'exactly one of target.pvcName, target.pvcNameSuffix or target.workload',
  ),
  restore(
    'a pvcNameSuffix with an underscore',
    fromGroup({ pvcNameSuffix: '_restored' }),
    false,
    'spec.target.pvcNameSuffix',
  ),
  restore(
    'a pvcNameSuffix in capitals',
    fromGroup({ pvcNameSuffix: '-Restored' }),
    false,
    'spec.target.pvcNameSuffix',
  ),
  restore(
    'a pvcNameSuffix ending with a dash',
    fromGroup({ pvcNameSuffix: '-restored-' }),
    false,
    'spec.target.pvcNameSuffix',
  ),
  restore(
    'an empty pvcNameSuffix',
    fromGroup({ pvcNameSuffix: '' }),
    false,
    'spec.target.pvcNameSuffix',
  ),
  restore(
    'a pvcNameSuffix of 64 characters',
    fromGroup({ pvcNameSuffix: `-${'r'.repeat(63)}` }),
    false,
    'spec.target.pvcNameSuffix',
  ),
  restore(
    'a target PVC name with an underscore',
    target({ pvcName: 'data_restored' }),
    false,
    'spec.target.pvcName',
  ),
  restore('size in GB', target({ size: '20GB' }), false, 'spec.target.size'),
  restore('a negative size', target({ size: '-1Gi' }), false, 'spec.target.size'),
  restore('size 0 as an integer', target({ size: 0 }), false, 'spec.target.size'),
  restore('size 0 as a quantity', target({ size: '0Gi' }), false, 'spec.target.size'),
  restore('a fractional size in bytes', target({ size: 1.5 }), false, 'spec.target.size'),
  restore(
    'an unknown access mode',
    target({ accessModes: ['ReadWriteSometimes'] }),
    false,
    'spec.target.accessModes[0]',
  ),
  restore('empty access modes', target({ accessModes: [] }), false, 'spec.target.accessModes'),
  restore(
    'a repeated access mode',
    target({ accessModes: ['ReadWriteOnce', 'ReadWriteOnce'] }),
    false,
    'spec.target.accessModes',
  ),
  restore(
    'an empty storage class',
    target({ storageClassName: '' }),
    false,
    'spec.target.storageClassName',
  ),
  restore(
    'a target label value with a space',
    target({ labels: { app: 'my web' } }),
    false,
    'spec.target.labels',
  ),
  restore(
    'a malformed annotation key',
    target({ annotations: { '-bad': 'x' } }),
    false,
    'spec.target.annotations',
  ),
  // VolumeSnapshot (snapshot.storage.k8s.io/v1)
  snapshot('a VolumeSnapshot without spec', undefined, 'spec'),
  snapshot('a VolumeSnapshot without source', { volumeSnapshotClassName: 'a' }, 'spec.source'),
  snapshot(
    'a VolumeSnapshot with an empty source',
    { source: {} },
    'volumeSnapshotContentName and persistentVolumeClaimName',
  ),
  snapshot(
    'a VolumeSnapshot with two sources',
    { source: { persistentVolumeClaimName: 'a', volumeSnapshotContentName: 'b' } },
    'volumeSnapshotContentName and persistentVolumeClaimName',
  ),
  snapshot(
    'a VolumeSnapshot with an empty class name',
    { source: { persistentVolumeClaimName: 'a' }, volumeSnapshotClassName: '' },
    'spec.volumeSnapshotClassName',
  ),
  policy(
    'consistency Group with pvcNames',
    { ...BASE_POLICY, consistency: 'Group' },
    false,
    'consistency Group takes spec.selector, not spec.pvcNames',
  ),
  policy('an unknown consistency', { ...BASE_POLICY, consistency: 'Crash' }, false, 'consistency'),
  policy(
    'groupSnapshotClass without consistency Group',
    { ...BASE_POLICY, groupSnapshotClass: { name: 'csi-groupclass' } },
    false,
    'groupSnapshotClass applies to consistency Group only',
  ),
  policy(
    'groupSnapshotClass with both name and template',
    {
      ...selector({}),
      consistency: 'Group',
      groupSnapshotClass: { name: 'a', template: { driver: 'local.snapback.dev' } },
    },
    false,
    'exactly one of groupSnapshotClass.name or groupSnapshotClass.template',
  ),
  policy(
    'a group class template with a csi.storage.k8s.io parameter',
    {
      ...selector({}),
      consistency: 'Group',
      groupSnapshotClass: {
        template: {
          driver: 'local.snapback.dev',
          parameters: { 'csi.storage.k8s.io/group-snapshotter-secret-name': 's' },
        },
      },
    },
    false,
    'parameters must not contain csi.storage.k8s.io/ keys',
  ),
];

export const ALL_CASES: ManifestCase[] = [...VALID_CASES, ...INVALID_CASES];
