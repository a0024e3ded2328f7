/**
 * snapback.dev/v1alpha1: BackupPolicy and RestoreJob.
 *
 * These zod schemas are the single source of truth for both kinds: the TypeScript types are
 * inferred from them, controllers validate specs with them, and `make generate` turns them
 * into the CRDs under crds/ (descriptions become `kubectl explain` text, rules become CEL).
 */
import { z } from 'zod';
import type { ApiObjectMeta } from './meta.js';
import {
  CRON_PATTERN,
  CSI_DRIVER_NAME_MAX_LENGTH,
  CSI_DRIVER_NAME_PATTERN,
  DURATION_MAX_LENGTH,
  DURATION_PATTERN,
  NONZERO_PATTERN,
  LABEL_KEY_MAX_LENGTH,
  LABEL_KEY_PATTERN,
  LABEL_VALUE_MAX_LENGTH,
  LABEL_VALUE_PATTERN,
  OBJECT_NAME_MAX_LENGTH,
  OBJECT_NAME_PATTERN,
  RFC3339_PATTERN,
  SCHEDULE_MACROS,
  SCHEDULE_MAX_LENGTH,
  TIME_ZONE_MAX_LENGTH,
  TIME_ZONE_PATTERN,
} from './formats.js';
import { QUANTITY_MAX_LENGTH, isPositiveQuantity } from './quantity.js';
import {
  celRegex,
  exactlyOneOf,
  immutable,
  keysMatch,
  matches,
  uniqueItems,
  uniqueKeys,
  withRules,
} from './rules.js';
import { CSI_PARAMETER_PREFIX } from './csi-parameters.js';
import { PARAM_FORCE_DELETE } from './snapshot.js';

export const GROUP = 'snapback.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}` as const;
export const CATEGORY = 'snapback';

export const BACKUP_POLICY_KIND = 'BackupPolicy';
export const BACKUP_POLICY_PLURAL = 'backuppolicies';
export const BACKUP_POLICY_SINGULAR = 'backuppolicy';
export const BACKUP_POLICY_SHORT_NAME = 'bp';

export const RESTORE_JOB_KIND = 'RestoreJob';
export const RESTORE_JOB_PLURAL = 'restorejobs';
export const RESTORE_JOB_SINGULAR = 'restorejob';
export const RESTORE_JOB_SHORT_NAME = 'rj';

/** On every VolumeSnapshot a BackupPolicy creates: the policy's name. */
export const LABEL_POLICY = `${GROUP}/policy`;
/** On every VolumeSnapshot a BackupPolicy creates: the name of the PVC it is a snapshot of. */
export const LABEL_PVC = `${GROUP}/pvc`;
/**
 * On a BackupPolicy: a new value asks for one run now. New means other than the value last
 * acted on (status.lastRunNowToken), so A, then B, then A again takes three runs.
 */
export const ANNOTATION_RUN_NOW = `${GROUP}/run-now`;
/** On a snapshot class a BackupPolicy owns: the namespace of the policy. */
export const LABEL_POLICY_NAMESPACE = `${GROUP}/policy-namespace`;
/** On objects a RestoreJob creates: the RestoreJob's name. */
export const LABEL_RESTORE_JOB = `${GROUP}/restore-job`;
/** On a policy's snapshot: the run's scheduled time (RFC 3339), or when its run-now token was first acted on. */
export const ANNOTATION_RUN_TIME = `${GROUP}/run-time`;
/** On a policy's snapshot taken by a run-now run: the token of that run. */
export const ANNOTATION_RUN_NOW_TOKEN = `${GROUP}/run-now-token`;
/** On a policy's snapshot: the PVC's and the policy's full names, for when a label value had to be shortened. */
export const ANNOTATION_PVC_NAME = `${GROUP}/pvc-name`;
export const ANNOTATION_POLICY_NAME = `${GROUP}/policy-name`;
/** On a restored PVC: the uid of the RestoreJob that created it. */
export const ANNOTATION_RESTORE_JOB_UID = `${GROUP}/restore-job-uid`;
/** On a restored PVC: the VolumeSnapshot it was restored from. */
export const ANNOTATION_RESTORED_FROM = `${GROUP}/restored-from`;
/** The longest run-now value acted on; a longer one is reported (Degraded, an Event), not run. */
export const MAX_RUN_NOW_TOKEN_LENGTH = 253;
/** status.pvcs lists at most this many PVCs, so the status of a large policy stays writable. */
export const MAX_STATUS_PVCS = 100;
/** The longest message snapback writes into a condition, a status field or an Event. */
export const MAX_MESSAGE_LENGTH = 1024;

/** What a scheduled run does while an earlier run's snapshots are not ready yet. */
export const CONCURRENCY_POLICIES = ['Forbid', 'Allow'] as const;
export type ConcurrencyPolicy = (typeof CONCURRENCY_POLICIES)[number];
export const DEFAULT_READY_DEADLINE_SECONDS = 3600;
/** How long a RestoreJob waits, by default, for its snapshot to become ready. */
export const DEFAULT_PENDING_DEADLINE_SECONDS = 3600;
/**
 * On a VolumeSnapshot a RestoreJob has chosen: this prefix and the job's uid, until the job
 * finishes or is deleted. Retention never prunes a snapshot that carries one.
 */
export const FINALIZER_RESTORE_SOURCE_PREFIX = `restorejob.${GROUP}/`;
/**
 * On a RestoreJob with mode Swap, from its first step until the workload runs again (swapped or
 * rolled back): deleting the job mid-swap rolls the workload back instead of stranding it.
 */
export const FINALIZER_SWAP = `${GROUP}/swap`;
/** On a StatefulSet a Swap restore works on: the uid of that RestoreJob (one swap at a time). */
export const ANNOTATION_SWAP_JOB = `${GROUP}/swap-job`;
/** On a StatefulSet a Swap restore works on: the replicas to return to. */
export const ANNOTATION_SWAP_REPLICAS = `${GROUP}/swap-replicas`;
/** How long a Swap restore waits, by default, for the workload to be Ready again. */
export const DEFAULT_READY_TIMEOUT_SECONDS = 600;

/** Condition types both kinds report. */
export const CONDITION_READY = 'Ready';
export const CONDITION_DEGRADED = 'Degraded';

// ---------------------------------------------------------------------------------------------
// Building blocks

const objectName = (what: string) =>
  z
    .string()
    .min(1)
    .max(OBJECT_NAME_MAX_LENGTH)
    .regex(
      new RegExp(OBJECT_NAME_PATTERN),
      `${what} must be a lowercase DNS-1123 name (a-z, 0-9, '-' and '.')`,
    );

/** Times are RFC 3339 strings on the wire, as the API server stores them. */
const dateTime = () => z.iso.datetime({ offset: true });

function boundedMap<V extends z.ZodType>(value: V, maxProperties: number, what: string) {
  return z
    .record(z.string(), value)
    .superRefine((map, ctx) => {
      if (Object.keys(map).length > maxProperties) {
        ctx.addIssue({
          code: 'custom',
          message: `${what} must have at most ${maxProperties} entries`,
          input: map,
        });
      }
    })
    .meta({ maxProperties });
}

const labelValue = z
  .string()
  .max(LABEL_VALUE_MAX_LENGTH)
  .regex(
    new RegExp(LABEL_VALUE_PATTERN),
    'label values are at most 63 characters of a-z, A-Z, 0-9, -, _ and ., alphanumeric at both ends',
  );

const labelKeysRule = (what: string) =>
  keysMatch(
    LABEL_KEY_PATTERN,
    `${what} keys must be an optional DNS prefix and '/', then a name of at most 63 characters of a-z, A-Z, 0-9, -, _ and .`,
  );

const labelMap = (what: string) =>
  withRules(boundedMap(labelValue, 64, what), [labelKeysRule(what)]);

const annotationMap = (what: string) =>
  withRules(boundedMap(z.string().max(4096), 64, what), [labelKeysRule(what)]);

/** A list whose items are unique, merged as a set by server-side apply. */
function setOf<T extends z.ZodType>(item: T, maxItems: number, what: string) {
  return z
    .array(item)
    .max(maxItems)
    .refine((items) => uniqueItems(items), `${what} must not repeat an entry`)
    .meta({ 'x-kubernetes-list-type': 'set' });
}

/** A list keyed by one field, merged by that key by server-side apply. */
function mapListOf<T extends z.ZodType<Record<K, unknown>>, K extends string>(
  item: T,
  key: K,
  maxItems: number,
  what: string,
) {
  return z
    .array(item)
    .max(maxItems)
    .refine((items) => uniqueKeys(items, (entry) => entry[key]), `${what} must not repeat a ${key}`)
    .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': [key] });
}

// ---------------------------------------------------------------------------------------------
// Conditions (the shape of metav1.Condition)

export const ConditionSchema = z
  .strictObject({
    type: z
      .string()
      .min(1)
      .max(316)
      .regex(
        /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/,
      )
      .describe('The aspect this condition reports on, in CamelCase, e.g. Ready or Degraded.'),
    status: z
      .enum(['True', 'False', 'Unknown'])
      .describe('Whether the condition holds: True, False or Unknown.'),
    observedGeneration: z
      .int()
      .min(0)
      .optional()
      .describe('The metadata.generation of the object when this condition was last set.'),
    lastTransitionTime: dateTime().describe('When the status last changed.'),
    reason: z
      .string()
      .min(1)
      .max(1024)
      .regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/)
      .describe('A CamelCase word for the cause of the last transition, for tools to match.'),
    message: z
      .string()
      .max(32768)
      .describe('What happened and, when something is wrong, what to do about it.'),
  })
  .describe('One observation about the state of the object.');
export type Condition = z.infer<typeof ConditionSchema>;

/** status.observedGeneration, as every status of this API carries it. */
const observedGeneration = () =>
  z.int().min(0).optional().describe('The metadata.generation this status describes.');

const conditions = () =>
  mapListOf(ConditionSchema, 'type', 32, 'conditions').describe(
    'The latest observations of the state of this object, one per type.',
  );

// ---------------------------------------------------------------------------------------------
// BackupPolicy

export const LabelSelectorRequirementSchema = withRules(
  z.strictObject({
    key: z
      .string()
      .min(1)
      .max(LABEL_KEY_MAX_LENGTH)
      .describe('The label key the requirement applies to.'),
    operator: z
      .enum(['In', 'NotIn', 'Exists', 'DoesNotExist'])
      .describe('How the label relates to the values: In, NotIn, Exists or DoesNotExist.'),
    values: z
      .array(labelValue)
      .max(64)
      .optional()
      .describe('The label values for In and NotIn; must be empty for Exists and DoesNotExist.'),
  }),
  [
    {
      rule: "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)",
      message:
        'values must be non-empty when operator is In or NotIn, and empty when it is Exists or DoesNotExist',
      fieldPath: '.values',
      check: ({ operator, values }) =>
        operator === 'In' || operator === 'NotIn'
          ? (values?.length ?? 0) > 0
          : (values?.length ?? 0) === 0,
    },
  ],
).describe('A requirement on one label of a PVC.');
export type LabelSelectorRequirement = z.infer<typeof LabelSelectorRequirementSchema>;

export const LabelSelectorSchema = z
  .strictObject({
    matchLabels: labelMap('selector.matchLabels')
      .optional()
      .describe('Labels a PVC must carry, with these exact values.'),
    matchExpressions: z
      .array(LabelSelectorRequirementSchema)
      .max(32)
      .optional()
      .describe('Further requirements on the labels of a PVC; all of them must hold.'),
  })
  .meta({ 'x-kubernetes-map-type': 'atomic' })
  .describe(
    'Selects PVCs of this namespace by label. Both matchLabels and matchExpressions must match; an empty selector selects every PVC of the namespace.',
  );
export type LabelSelector = z.infer<typeof LabelSelectorSchema>;

/** The Alibaba Cloud disk driver (ACK's, and snapback's alicloud backend). */
export const ALICLOUD_DISK_DRIVER = 'diskplugin.csi.alibabacloud.com';
/** snapback's local disk driver. */
export const LOCAL_DISK_DRIVER = 'local.snapback.dev';
/** The alicloud class parameter that makes ECS delete each snapshot after that many days. */
export const PARAM_RETENTION_DAYS = 'retentionDays';
/**
 * The class parameters a template may give the Alibaba Cloud disk driver (besides
 * forceDelete, which has its own field): keys, and key prefixes ending in '/'.
 */
export const ALICLOUD_TEMPLATE_PARAMETERS = [
  'resourceGroupId',
  'snapshotTags/',
  'snapshotType',
  'instantAccess',
  'instantAccessRetentionDays',
] as const;

const isAllowedAlicloudKey = (key: string) =>
  ALICLOUD_TEMPLATE_PARAMETERS.some((allowed) =>
    allowed.endsWith('/') ? key.startsWith(allowed) : key === allowed,
  );
const celAllowedAlicloudKey = (key: string) =>
  ALICLOUD_TEMPLATE_PARAMETERS.map((allowed) =>
    allowed.endsWith('/') ? `${key}.startsWith('${allowed}')` : `${key} == '${allowed}'`,
  ).join(' || ');
/** Keys other rules of the template already name, so that each key gets one message. */
const celCoveredElsewhere = (key: string) =>
  `${key} == '${PARAM_FORCE_DELETE}' || ${key}.startsWith('${CSI_PARAMETER_PREFIX}')`;
const coveredElsewhere = (key: string) =>
  key === PARAM_FORCE_DELETE || key.startsWith(CSI_PARAMETER_PREFIX);
const keysOf = (parameters: Record<string, string> | undefined) => Object.keys(parameters ?? {});

/** The `driver` of a class template: a CSI driver name, `example` in the format message. */
const csiDriverField = (example: string, description: string) =>
  z
    .string()
    .min(1)
    .max(CSI_DRIVER_NAME_MAX_LENGTH)
    .regex(
      new RegExp(CSI_DRIVER_NAME_PATTERN),
      `driver must be a CSI driver name such as ${example}`,
    )
    .describe(description);

/**
 * The rule every class template carries: no `csi.storage.k8s.io/` parameter keys, which name
 * Secrets for the CSI sidecars. `kind` and `field` word the way out (an administrator's class).
 */
const noCsiSecretParameters = (kind: string, field: string) => ({
  rule: `!has(self.parameters) || self.parameters.all(key, !key.startsWith('${CSI_PARAMETER_PREFIX}'))`,
  message: `parameters must not contain ${CSI_PARAMETER_PREFIX} keys: they name Secrets for the CSI sidecars; ask an administrator for a ${kind} and set ${field}.name`,
  fieldPath: '.parameters',
  check: ({ parameters }: { parameters?: Record<string, string> | undefined }) =>
    keysOf(parameters).every((k) => !k.startsWith(CSI_PARAMETER_PREFIX)),
});

/** `{name}` of an existing class of `kind` or `{template}` of one snapback owns: exactly one. */
const classRef = <T extends z.ZodType>(field: string, kind: string, template: T) =>
  withRules(
    z.strictObject({
      name: objectName(`${field}.name`)
        .optional()
        .describe(`The name of an existing ${kind} to use.`),
      template: template
        .describe(
          `A ${kind} that snapback creates and owns for this policy, named after the policy and deleted with it.`,
        )
        .optional(),
    }),
    [
      exactlyOneOf(
        ['name', 'template'],
        `exactly one of ${field}.name or ${field}.template must be set`,
      ),
    ],
  );

export const SnapshotClassTemplateSchema = withRules(
  z.strictObject({
    driver: csiDriverField(
      'diskplugin.csi.alibabacloud.com',
      'The CSI driver that takes the snapshots, e.g. diskplugin.csi.alibabacloud.com for Alibaba Cloud disks or local.snapback.dev for the local backend. It must be the driver of the selected PVCs.',
    ),
    deletionPolicy: z
      .enum(['Delete', 'Retain'])
      .default('Delete')
      .describe(
        'What happens to the stored snapshot when its VolumeSnapshot is deleted (for example by retention): Delete removes it from the storage system, Retain keeps it there and only removes the Kubernetes objects.',
      ),
    forceDelete: z
      .boolean()
      .default(false)
      .describe(
        'Allow deleting a snapshot from which disks were created. When false, a snapshot that still has dependent disks is kept until they are gone. A disk still being created from a snapshot blocks its deletion either way.',
      ),
    parameters: boundedMap(z.string().max(4096), 64, 'snapshotClass.template.parameters')
      .optional()
      .describe(
        `Driver-specific parameters of the VolumeSnapshotClass, passed to the CSI driver when a snapshot is taken. Whoever may write a BackupPolicy may set them, so they are an allow-list: for ${ALICLOUD_DISK_DRIVER}, ${ALICLOUD_TEMPLATE_PARAMETERS.map((k) => (k.endsWith('/') ? `${k}<key>` : k)).join(', ')} (not ${PARAM_RETENTION_DAYS}: ECS would delete the snapshots after that many days, unknown to retention; use retention.maxAge); for ${LOCAL_DISK_DRIVER}, none; for other drivers, any key but the ${CSI_PARAMETER_PREFIX} ones, which name Secrets for the CSI sidecars and are refused for every driver. A class an administrator made, used through snapshotClass.name, is not restricted. forceDelete is set through its own field, not here.`,
      ),
  }),
  [
    {
      rule: `!has(self.parameters) || !('${PARAM_FORCE_DELETE}' in self.parameters)`,
      message: 'parameters must not contain forceDelete: set snapshotClass.template.forceDelete',
      fieldPath: '.parameters',
      check: ({ parameters }) => parameters === undefined || !(PARAM_FORCE_DELETE in parameters),
    },
    noCsiSecretParameters('VolumeSnapshotClass', 'snapshotClass'),
    {
      rule: `self.driver != '${ALICLOUD_DISK_DRIVER}' || !has(self.parameters) || !('${PARAM_RETENTION_DAYS}' in self.parameters)`,
      message: `parameters must not contain ${PARAM_RETENTION_DAYS}: ECS would delete the snapshots after that many days, unknown to retention; use spec.retention.maxAge`,
      fieldPath: '.parameters',
      check: ({ driver, parameters }) =>
        driver !== ALICLOUD_DISK_DRIVER || !keysOf(parameters).includes(PARAM_RETENTION_DAYS),
    },
    {
      rule: `self.driver != '${ALICLOUD_DISK_DRIVER}' || !has(self.parameters) || self.parameters.all(key, ${celAllowedAlicloudKey('key')} || key == '${PARAM_RETENTION_DAYS}' || ${celCoveredElsewhere('key')})`,
      message: `parameters for ${ALICLOUD_DISK_DRIVER} may contain only ${ALICLOUD_TEMPLATE_PARAMETERS.map((k) => (k.endsWith('/') ? `${k}<key>` : k)).join(', ')}`,
      fieldPath: '.parameters',
      check: ({ driver, parameters }) =>
        driver !== ALICLOUD_DISK_DRIVER ||
        keysOf(parameters).every(
          (k) => isAllowedAlicloudKey(k) || k === PARAM_RETENTION_DAYS || coveredElsewhere(k),
        ),
    },
    {
      rule: `self.driver != '${LOCAL_DISK_DRIVER}' || !has(self.parameters) || self.parameters.all(key, ${celCoveredElsewhere('key')})`,
      message: `parameters must be empty for ${LOCAL_DISK_DRIVER}: the local driver takes no class parameters`,
      fieldPath: '.parameters',
      check: ({ driver, parameters }) =>
        driver !== LOCAL_DISK_DRIVER || keysOf(parameters).every(coveredElsewhere),
    },
  ],
);
export type SnapshotClassTemplate = z.infer<typeof SnapshotClassTemplateSchema>;

export const SnapshotClassRefSchema = classRef(
  'snapshotClass',
  'VolumeSnapshotClass',
  SnapshotClassTemplateSchema,
).describe(
  'The VolumeSnapshotClass of the snapshots: exactly one of name (an existing class) or template (a class snapback creates). When snapshotClass is omitted, the snapshots use the default class of the PVC driver (the class annotated snapshot.storage.kubernetes.io/is-default-class: "true").',
);
export type SnapshotClassRef = z.infer<typeof SnapshotClassRefSchema>;

/** How a run snapshots the selected PVCs: each on its own, or all at one instant as a group. */
export const CONSISTENCIES = ['Volume', 'Group'] as const;
export type Consistency = (typeof CONSISTENCIES)[number];

export const GroupSnapshotClassTemplateSchema = withRules(
  z.strictObject({
    driver: csiDriverField(
      'local.snapback.dev',
      'The CSI driver that takes the group snapshots; it must be the driver of the selected PVCs and serve group snapshots (the CSI GroupController capability CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT).',
    ),
    deletionPolicy: z
      .enum(['Delete', 'Retain'])
      .default('Delete')
      .describe(
        'What happens to the stored group snapshot when its VolumeGroupSnapshot is deleted (for example by retention): Delete removes it from the storage system, Retain keeps it there.',
      ),
    parameters: boundedMap(z.string().max(4096), 64, 'groupSnapshotClass.template.parameters')
      .optional()
      .describe(
        `Driver-specific parameters of the VolumeGroupSnapshotClass. Keys starting with ${CSI_PARAMETER_PREFIX} name Secrets for the CSI sidecars and are refused; a class an administrator made, used through groupSnapshotClass.name, is not restricted.`,
      ),
  }),
  [noCsiSecretParameters('VolumeGroupSnapshotClass', 'groupSnapshotClass')],
);
export type GroupSnapshotClassTemplate = z.infer<typeof GroupSnapshotClassTemplateSchema>;

export const GroupSnapshotClassRefSchema = classRef(
  'groupSnapshotClass',
  'VolumeGroupSnapshotClass',
  GroupSnapshotClassTemplateSchema,
).describe(
  'The VolumeGroupSnapshotClass of the group snapshots (consistency Group only): exactly one of name (an existing class) or template (a class snapback creates). When omitted, the groups use the default group class of the PVC driver.',
);
export type GroupSnapshotClassRef = z.infer<typeof GroupSnapshotClassRefSchema>;

const retentionCount = (description: string) =>
  z.int().min(0).max(10000).optional().describe(description);

const RETENTION_RULES = [
  'keepLast',
  'maxAge',
  'hourly',
  'daily',
  'weekly',
  'monthly',
  'yearly',
] as const;

export const RetentionSchema = withRules(
  z.strictObject({
    keepLast: retentionCount('Keep the newest N ready snapshots of each PVC.'),
    maxAge: withRules(z.string().max(DURATION_MAX_LENGTH), [
      {
        rule: `self.matches(${celRegex(DURATION_PATTERN)}) && self.matches(${celRegex(NONZERO_PATTERN)})`,
        message:
          'maxAge must be a positive duration such as 36h, 30d or 1w2d (units s, m, h, d, w)',
        check: (value) =>
          new RegExp(DURATION_PATTERN).test(value) && new RegExp(NONZERO_PATTERN).test(value),
      },
    ])
      .optional()
      .describe(
        'The count rules (keepLast and the tiers) keep no snapshot older than this; without a count rule, every snapshot younger than this is kept. Whole units of s, m, h, d (24h) and w (7d), e.g. 36h, 30d or 1w2d.',
      ),
    hourly: retentionCount(
      'Keep the newest snapshot of each of the last N hours that have one (grandfather-father-son rotation).',
    ),
    daily: retentionCount('Keep the newest snapshot of each of the last N days that have one.'),
    weekly: retentionCount('Keep the newest snapshot of each of the last N weeks that have one.'),
    monthly: retentionCount('Keep the newest snapshot of each of the last N months that have one.'),
    yearly: retentionCount('Keep the newest snapshot of each of the last N years that have one.'),
    minReady: z
      .int()
      .min(1)
      .max(10000)
      .default(1)
      .describe('The newest minReady ready snapshots of each PVC are always kept.'),
  }),
  [
    {
      rule: RETENTION_RULES.map((field) => `has(self.${field})`).join(' || '),
      message: `retention needs at least one of ${RETENTION_RULES.join(', ')}`,
      check: (retention) => RETENTION_RULES.some((field) => retention[field] !== undefined),
    },
  ],
).describe(
  'Which snapshots of each PVC to keep after every run; the others are deleted. The rules count ready snapshots only, and a snapshot is kept when any count rule keeps it. Pruning never deletes a snapshot that is not ready, the newest minReady ready ones, or one a restore is using, and it pauses while the policy is suspended or the latest run of the PVC failed. Calendar periods (hours, days, ISO weeks, months, years) are those of spec.timeZone. Without retention, no snapshot is deleted.',
);
export type Retention = z.infer<typeof RetentionSchema>;

/** What a failing hook does to the run: Fail skips it (no snapshot), Continue takes it anyway. */
export const HOOK_ON_ERROR = ['Fail', 'Continue'] as const;
export type HookOnError = (typeof HOOK_ON_ERROR)[number];
export const HOOK_PHASES = ['pre', 'post'] as const;
export type HookPhase = (typeof HOOK_PHASES)[number];
export const DEFAULT_HOOK_TIMEOUT_SECONDS = 30;
/** Hooks per phase; each runs in every pod that mounts a snapshotted PVC. */
export const MAX_HOOKS_PER_PHASE = 8;
/** status.lastHooks keeps at most this many results (those of the last run). */
export const MAX_STATUS_HOOK_RESULTS = 50;

export const HookSchema = z
  .strictObject({
    container: z
      .string()
      .min(1)
      .max(63)
      .regex(
        /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/,
        'container must be a container name (a DNS-1123 label)',
      )
      .describe('The container of the pod to run the command in.'),
    command: z
      .array(z.string().max(4096))
      .min(1)
      .max(64)
      .describe(
        'The command and its arguments, run without a shell (use ["sh", "-c", "..."] for one), as kubectl exec runs it.',
      ),
    timeoutSeconds: z
      .int()
      .min(1)
      .max(3600)
      .default(DEFAULT_HOOK_TIMEOUT_SECONDS)
      .describe(
        `How long the command may run, in seconds; default ${DEFAULT_HOOK_TIMEOUT_SECONDS}. Past it the hook counts as failed (the command itself is not killed: the exec session is closed).`,
      ),
    onError: z
      .enum(HOOK_ON_ERROR)
      .default('Fail')
      .describe(
        'What a failure (a non-zero exit code, a timeout, a missing container, an exec error) does: Fail (the default) skips the run of a pre hook, so no snapshot is taken, and reports the policy Degraded with reason HookFailed; Continue records the failure in status.lastHooks and goes on.',
      ),
  })
  .describe(
    'A command run through the pods/exec API in each running pod that mounts a PVC the run snapshots.',
  );
export type Hook = z.infer<typeof HookSchema>;

export const HooksSchema = z
  .strictObject({
    pre: z
      .array(HookSchema)
      .max(MAX_HOOKS_PER_PHASE)
      .optional()
      .describe(
        'Run, in order, before any snapshot of the run is created, for example to flush an application to disk. After a restart of the controller in the middle of a run they run again before any snapshot still to be created.',
      ),
    post: z
      .array(HookSchema)
      .max(MAX_HOOKS_PER_PHASE)
      .optional()
      .describe(
        'Run, in order, once every snapshot of the run is cut (has a creation time, ready or not) or failed, and also when a pre hook made the run skip; for example to resume writes.',
      ),
  })
  .describe(
    'Commands run in the pods that mount the snapshotted PVCs around each run. The installation must allow them (the chart value hooks.enabled); otherwise the policy reports Ready=False with reason HooksDisabled and takes no snapshot.',
  );
export type Hooks = z.infer<typeof HooksSchema>;

/** On a BackupPolicy: a new value asks for one restore drill now (spec.verify), as run-now does for a run. */
export const ANNOTATION_VERIFY_NOW = `${GROUP}/verify-now`;
/** On the scratch PVCs and the Job of a restore drill: the policy's name (beside snapback.dev/policy). */
export const LABEL_VERIFY = `${GROUP}/verify`;
export const DEFAULT_VERIFY_TIMEOUT_SECONDS = 600;
export const VERIFICATION_RESULTS = ['Succeeded', 'Failed'] as const;
export type VerificationResult = (typeof VERIFICATION_RESULTS)[number];

export const VerifySchema = z
  .strictObject({
    schedule: withRules(z.string().max(SCHEDULE_MAX_LENGTH), [
      matches(
        CRON_PATTERN,
        `verify.schedule must be a 5-field cron expression (minute hour day-of-month month day-of-week) or one of ${SCHEDULE_MACROS.join(', ')}`,
      ),
    ]).describe(
      'When to run a restore drill, as a CronJob schedule (the same syntax as spec.schedule), e.g. "0 4 * * SUN". A drill at other times: set the snapback.dev/verify-now annotation to a new value.',
    ),
    timeZone: z
      .string()
      .max(TIME_ZONE_MAX_LENGTH)
      .regex(
        new RegExp(TIME_ZONE_PATTERN),
        'verify.timeZone must be an IANA time-zone name such as UTC or Europe/Berlin',
      )
      .optional()
      .describe('The IANA time zone verify.schedule is read in; defaults to spec.timeZone.'),
    command: z
      .array(z.string().max(4096))
      .min(1)
      .max(64)
      .optional()
      .describe(
        'A command run in the drill container after the built-in check, without a shell (use ["sh", "-c", "..."] for one), with each restored volume mounted read-only under /data/<pvc>; a non-zero exit fails the drill.',
      ),
    timeoutSeconds: z
      .int()
      .min(30)
      .max(86400)
      .default(DEFAULT_VERIFY_TIMEOUT_SECONDS)
      .describe(
        `How long the whole drill may take, in seconds, from the restore of the scratch volume to the end of the check and command; default ${DEFAULT_VERIFY_TIMEOUT_SECONDS}. Past it the drill fails as timed out and its scratch objects are removed.`,
      ),
    storageClassName: objectName('verify.storageClassName')
      .optional()
      .describe(
        "The StorageClass of the scratch PVCs the snapshot is restored into; defaults to the source PVC's.",
      ),
  })
  .describe(
    'Restore drills: on a schedule (and on demand through the snapback.dev/verify-now annotation), the newest ready snapshot (with consistency Group: every member of the newest ready group) is restored into scratch PVCs, mounted read-only in a Job that reads every file and runs the optional command, and the result recorded in status.lastVerification; the scratch objects are removed afterwards. The installation must allow drills (the chart value verify.enabled); otherwise the policy reports VerifyDisabled and runs none, while its snapshots go on.',
  );
export type Verify = z.infer<typeof VerifySchema>;

export const BackupPolicySpecSchema = withRules(
  z.strictObject({
    selector: LabelSelectorSchema.optional(),
    pvcNames: setOf(objectName('pvcNames entries'), 100, 'pvcNames')
      .min(1)
      .optional()
      .describe(
        'The names of the PVCs of this namespace to back up. Set either pvcNames or selector.',
      ),
    schedule: withRules(z.string().max(SCHEDULE_MAX_LENGTH), [
      matches(
        CRON_PATTERN,
        `schedule must be a 5-field cron expression (minute hour day-of-month month day-of-week) or one of ${SCHEDULE_MACROS.join(', ')}`,
      ),
    ]).describe(
      `When to take snapshots, as a CronJob schedule: a 5-field cron expression (minute hour day-of-month month day-of-week; months 1-12 or JAN-DEC, days of the week 0-7 or SUN-SAT with Sunday 0 or 7), e.g. "0 2 * * *" for 02:00 every day or "30 1 * * MON-FRI", or one of ${SCHEDULE_MACROS.join(', ')}.`,
    ),
    timeZone: z
      .string()
      .max(TIME_ZONE_MAX_LENGTH)
      .regex(
        new RegExp(TIME_ZONE_PATTERN),
        'timeZone must be an IANA time-zone name such as UTC or Europe/Berlin',
      )
      .default('UTC')
      .describe(
        'The IANA time zone the schedule and the retention periods are read in, e.g. Asia/Shanghai. Defaults to UTC.',
      ),
    startingDeadlineSeconds: z
      .int()
      .min(1)
      .optional()
      .describe(
        'A scheduled run that cannot start within this many seconds of its time (say, the controller was down) is skipped and counted in status.missedRuns; without a deadline it runs late. Of several runs missed in a row, only the most recent is made up.',
      ),
    suspend: z
      .boolean()
      .default(false)
      .describe(
        'Pause the schedule: while suspended no scheduled run happens, none counts as missed, and no snapshot is pruned. Resuming does not catch up on the paused period.',
      ),
    concurrencyPolicy: z
      .enum(CONCURRENCY_POLICIES)
      .default('Forbid')
      .describe(
        'What a scheduled run does while snapshots of an earlier run are still not ready to use (and not past readyDeadlineSeconds), as in a CronJob: Forbid (the default) skips the run, counts it in status.skippedRuns and records a RunSkipped Event; Allow takes it anyway. A run-now run is always taken.',
      ),
    readyDeadlineSeconds: z
      .int()
      .min(1)
      .default(DEFAULT_READY_DEADLINE_SECONDS)
      .describe(
        `How long a snapshot may take to become ready to use, in seconds from its creation; default ${DEFAULT_READY_DEADLINE_SECONDS} (1 hour). A snapshot still not ready after it is reported as failed (status.pvcs, the Degraded condition with reason SnapshotTimedOut, a Warning Event), no longer holds back scheduled runs, and pauses pruning of its PVC like a failed one. It is not deleted, and counts again once it becomes ready.`,
      ),
    snapshotClass: SnapshotClassRefSchema.optional(),
    consistency: z
      .enum(CONSISTENCIES)
      .default('Volume')
      .describe(
        'Volume (the default): each run takes one VolumeSnapshot per selected PVC. Group: each run takes one VolumeGroupSnapshot over the PVCs spec.selector selects, all at one instant; retention then counts groups and deletes a group whole. Group needs spec.selector (a group source is a label selector), not spec.pvcNames.',
      ),
    groupSnapshotClass: GroupSnapshotClassRefSchema.optional(),
    retention: RetentionSchema.optional(),
    hooks: HooksSchema.optional(),
    verify: VerifySchema.optional(),
  }),
  [
    exactlyOneOf(['selector', 'pvcNames'], 'exactly one of selector or pvcNames must be set'),
    {
      rule: "!has(self.consistency) || self.consistency != 'Group' || !has(self.pvcNames)",
      message:
        'consistency Group takes spec.selector, not spec.pvcNames: the source of a VolumeGroupSnapshot is a label selector; label the PVCs and select them',
      fieldPath: '.pvcNames',
      check: ({ consistency, pvcNames }) => consistency !== 'Group' || pvcNames === undefined,
    },
    {
      rule: "!has(self.groupSnapshotClass) || (has(self.consistency) && self.consistency == 'Group')",
      message:
        'groupSnapshotClass applies to consistency Group only; set consistency: Group or remove it',
      fieldPath: '.groupSnapshotClass',
      check: ({ consistency, groupSnapshotClass }) =>
        groupSnapshotClass === undefined || consistency === 'Group',
    },
  ],
).describe(
  'Which PVCs to snapshot, when, with which VolumeSnapshotClass, and how many snapshots to keep.',
);
export type BackupPolicySpec = z.infer<typeof BackupPolicySpecSchema>;
export type BackupPolicySpecInput = z.input<typeof BackupPolicySpecSchema>;

export const PvcBackupStatusSchema = z
  .strictObject({
    pvcName: objectName('pvcName').describe('The PVC.'),
    readySnapshots: z
      .int()
      .min(0)
      .describe('How many snapshots of this PVC are ready to restore from.'),
    totalSnapshots: z.int().min(0).describe('How many snapshots of this PVC exist, ready or not.'),
    lastSnapshotName: objectName('lastSnapshotName')
      .optional()
      .describe('The VolumeSnapshot the most recent run created for this PVC.'),
    lastReadyTime: dateTime()
      .optional()
      .describe('When the newest ready snapshot of this PVC was taken.'),
    message: z
      .string()
      .max(MAX_MESSAGE_LENGTH)
      .optional()
      .describe(
        `Why the last run failed for this PVC, at most ${MAX_MESSAGE_LENGTH} characters; absent when it succeeded.`,
      ),
  })
  .describe('The snapshots of one selected PVC.');
export type PvcBackupStatus = z.infer<typeof PvcBackupStatusSchema>;

export const HookResultSchema = z
  .strictObject({
    phase: z.enum(HOOK_PHASES).describe('pre or post.'),
    pod: objectName('pod').describe('The pod the hook ran in.'),
    container: z.string().max(63).describe('The container the hook ran in.'),
    command: z
      .string()
      .max(MAX_MESSAGE_LENGTH)
      .describe('The command as one line, its arguments joined by spaces.'),
    exitCode: z
      .int()
      .optional()
      .describe('The exit code; absent when the command did not finish (timeout, exec error).'),
    message: z
      .string()
      .max(MAX_MESSAGE_LENGTH)
      .describe('What happened: success, or the error and the tail of the output.'),
    time: dateTime().describe('When the hook finished.'),
  })
  .describe('The result of one hook in one pod.');
export type HookResult = z.infer<typeof HookResultSchema>;

export const HOOK_RUN_OUTCOMES = ['PreHooksDone', 'Skipped', 'Done'] as const;
export type HookRunOutcome = (typeof HOOK_RUN_OUTCOMES)[number];

export const HookRunSchema = z
  .strictObject({
    run: z
      .string()
      .max(MAX_MESSAGE_LENGTH)
      .describe('The run: its scheduled time or its run-now token.'),
    state: z
      .enum(HOOK_RUN_OUTCOMES)
      .describe(
        'PreHooksDone: the pre hooks ran and the snapshots are being cut, the post hooks are due once they are; Skipped: a pre hook failed with onError Fail, no snapshot was taken; Done: the post hooks ran.',
      ),
    snapshots: setOf(objectName('snapshots entries'), MAX_STATUS_PVCS * 2, 'snapshots')
      .optional()
      .describe('The VolumeSnapshots of the run, which the post hooks wait for.'),
    pvcs: setOf(objectName('pvcs entries'), MAX_STATUS_PVCS * 2, 'pvcs')
      .optional()
      .describe('The PVCs of the run: the post hooks run in the pods that mount them.'),
    message: z
      .string()
      .max(MAX_MESSAGE_LENGTH)
      .optional()
      .describe('Why the run was skipped, or which hooks failed.'),
    time: dateTime().describe('When the state was reached.'),
  })
  .describe('Where the hooks of the latest run are: written before its snapshots are created.');
export type HookRun = z.infer<typeof HookRunSchema>;

export const GroupBackupStatusSchema = z
  .strictObject({
    name: objectName('lastGroup.name').describe('The VolumeGroupSnapshot of the most recent run.'),
    runTime: dateTime().describe(
      'The run it stands for: its scheduled time, or when run-now fired.',
    ),
    readyToUse: z
      .boolean()
      .describe('Whether the group, and so every member, is ready to restore from.'),
    members: z
      .int()
      .min(0)
      .describe('How many member VolumeSnapshots the group holds (one per PVC it was taken of).'),
    readyMembers: z.int().min(0).describe('How many of its member VolumeSnapshots are ready.'),
    readyOverTotal: z
      .string()
      .max(64)
      .describe('readyMembers/members as text, e.g. 3/3, for kubectl get.'),
    message: z
      .string()
      .max(MAX_MESSAGE_LENGTH)
      .optional()
      .describe(
        `Why the group failed or is late, at most ${MAX_MESSAGE_LENGTH} characters; absent while it is fine.`,
      ),
  })
  .describe('The newest VolumeGroupSnapshot of a consistency Group policy.');
export type GroupBackupStatus = z.infer<typeof GroupBackupStatusSchema>;

export const VerificationSchema = z
  .strictObject({
    trigger: z
      .string()
      .max(MAX_MESSAGE_LENGTH)
      .describe('What started the drill: "verify-now <token>" or "scheduled <time>".'),
    startTime: dateTime().describe('When the drill started; its timeout counts from here.'),
    snapshotName: objectName('snapshotName')
      .optional()
      .describe('The VolumeSnapshot restored (consistency Volume).'),
    volumeGroupSnapshotName: objectName('volumeGroupSnapshotName')
      .optional()
      .describe('The VolumeGroupSnapshot whose members are restored (consistency Group).'),
    snapshots: setOf(objectName('snapshots entries'), MAX_STATUS_PVCS, 'snapshots').describe(
      'The VolumeSnapshots restored; retention does not delete them while the drill runs.',
    ),
    pvcs: setOf(objectName('pvcs entries'), MAX_STATUS_PVCS, 'pvcs').describe(
      'The scratch PVCs, one per snapshot, in the order of snapshots.',
    ),
    sourcePvcs: setOf(objectName('sourcePvcs entries'), MAX_STATUS_PVCS, 'sourcePvcs').describe(
      'The PVCs the snapshots were taken of, in the order of snapshots: each is mounted under /data/<pvc>.',
    ),
    job: objectName('job').describe('The Job running the check.'),
    result: z
      .enum(VERIFICATION_RESULTS)
      .optional()
      .describe('Set once the drill has a result: its scratch objects are then being removed.'),
    reason: z.string().max(64).optional().describe('A CamelCase word for the result.'),
    message: z.string().max(MAX_MESSAGE_LENGTH).optional().describe('The result, in words.'),
  })
  .describe('The restore drill in progress, written before any of its objects is created.');
export type Verification = z.infer<typeof VerificationSchema>;

export const LastVerificationSchema = z
  .strictObject({
    time: dateTime().describe('When the drill ended.'),
    snapshotName: objectName('snapshotName')
      .optional()
      .describe('The VolumeSnapshot restored (consistency Volume).'),
    volumeGroupSnapshotName: objectName('volumeGroupSnapshotName')
      .optional()
      .describe('The VolumeGroupSnapshot restored (consistency Group).'),
    result: z.enum(VERIFICATION_RESULTS).describe('Succeeded or Failed.'),
    reason: z
      .string()
      .max(64)
      .describe(
        'A CamelCase word for the result: VerificationSucceeded, VerificationFailed, VerificationTimedOut, VolumeMountFailed or NoSnapshotToVerify.',
      ),
    message: z
      .string()
      .max(MAX_MESSAGE_LENGTH)
      .describe('What the drill found: success, or why it failed.'),
  })
  .describe('The result of the most recent restore drill.');
export type LastVerification = z.infer<typeof LastVerificationSchema>;

export const BackupPolicyStatusSchema = z
  .strictObject({
    observedGeneration: observedGeneration(),
    conditions: conditions().optional(),
    lastScheduleTime: dateTime().optional().describe('The scheduled time of the most recent run.'),
    nextScheduleTime: dateTime()
      .optional()
      .describe('When the next scheduled run is due; absent while suspended.'),
    lastSuccessfulTime: dateTime()
      .optional()
      .describe('The scheduled time of the most recent run that snapshotted every selected PVC.'),
    missedRuns: z
      .int()
      .min(0)
      .optional()
      .describe('How many scheduled runs were skipped because they could not start in time.'),
    skippedRuns: z
      .int()
      .min(0)
      .optional()
      .describe(
        'How many scheduled runs concurrencyPolicy Forbid skipped because snapshots of an earlier run were not ready yet.',
      ),
    lastRunNowToken: z
      .string()
      .max(MAX_RUN_NOW_TOKEN_LENGTH)
      .optional()
      .describe(
        `The value of the snapback.dev/run-now annotation that was last acted on. A run is taken whenever the annotation holds another value, even one used before; a value longer than ${MAX_RUN_NOW_TOKEN_LENGTH} characters is not run but reported in the Degraded condition and an Event.`,
      ),
    runNowCount: z
      .int()
      .min(0)
      .optional()
      .describe(
        'How many on-demand (run-now) runs the policy has taken; with the token, it names the snapshots of the next one.',
      ),
    readySnapshots: z.int().min(0).optional().describe('Ready snapshots over all selected PVCs.'),
    totalSnapshots: z
      .int()
      .min(0)
      .optional()
      .describe('Snapshots over all selected PVCs, ready or not.'),
    readyOverTotal: z
      .string()
      .max(64)
      .optional()
      .describe('readySnapshots/totalSnapshots as text, e.g. 6/7, for kubectl get.'),
    selectedPvcs: z.int().min(0).optional().describe('How many PVCs the policy selects.'),
    readyGroups: z
      .int()
      .min(0)
      .optional()
      .describe("consistency Group: how many of the policy's VolumeGroupSnapshots are ready."),
    totalGroups: z
      .int()
      .min(0)
      .optional()
      .describe('consistency Group: how many VolumeGroupSnapshots the policy has, ready or not.'),
    readyOverTotalGroups: z
      .string()
      .max(64)
      .optional()
      .describe('readyGroups/totalGroups as text, e.g. 2/3, for kubectl get.'),
    lastGroup: GroupBackupStatusSchema.optional(),
    pvcs: mapListOf(PvcBackupStatusSchema, 'pvcName', MAX_STATUS_PVCS, 'pvcs')
      .optional()
      .describe(
        `One entry per PVC the policy selects, at most ${MAX_STATUS_PVCS}: when it selects more, those with a problem are listed first and the others are counted in selectedPvcs, readySnapshots and totalSnapshots only.`,
      ),
    hookRun: HookRunSchema.optional(),
    lastHooks: z
      .array(HookResultSchema)
      .max(MAX_STATUS_HOOK_RESULTS)
      .optional()
      .describe(
        `The result of each hook of the latest run that had hooks, pre hooks first, at most ${MAX_STATUS_HOOK_RESULTS}.`,
      ),
    verification: VerificationSchema.optional(),
    lastVerification: LastVerificationSchema.optional(),
    lastSuccessfulVerificationTime: dateTime()
      .optional()
      .describe('When the most recent restore drill that succeeded ended.'),
    verifySince: dateTime()
      .optional()
      .describe(
        'When the policy was first seen with spec.verify: the first scheduled drill is the first scheduled time after it, and a drill is overdue counting from it until one succeeds.',
      ),
    lastVerifyScheduleTime: dateTime()
      .optional()
      .describe('The scheduled time of the most recent scheduled drill.'),
    nextVerificationTime: dateTime()
      .optional()
      .describe('When the next scheduled drill is due; absent without spec.verify.'),
    lastVerifyNowToken: z
      .string()
      .max(MAX_RUN_NOW_TOKEN_LENGTH)
      .optional()
      .describe(
        'The value of the snapback.dev/verify-now annotation last acted on; another value starts a drill.',
      ),
  })
  .describe('The observed state of the policy, written by snapback.');
export type BackupPolicyStatus = z.infer<typeof BackupPolicyStatusSchema>;

// ---------------------------------------------------------------------------------------------
// RestoreJob

export const RESTORE_JOB_PHASES = ['Pending', 'Restoring', 'Succeeded', 'Failed'] as const;
export const RESTORE_MODES = ['New', 'Swap'] as const;
export type RestoreMode = (typeof RESTORE_MODES)[number];
export type RestoreJobPhase = (typeof RESTORE_JOB_PHASES)[number];

/** The value of `at` that means "the newest ready snapshot". */
export const AT_LATEST = 'latest';

export const BackupPolicySourceSchema = z
  .strictObject({
    name: objectName('source.backupPolicy.name').describe(
      'The BackupPolicy (same namespace) whose snapshots to restore from.',
    ),
    pvcName: objectName('source.backupPolicy.pvcName')
      .optional()
      .describe(
        "The PVC whose snapshot to restore. Required when the policy has consistency Volume (the value of its snapshots' snapback.dev/pvc label). When the policy has consistency Group, restores that one member of the chosen group; omitted, every member of the group is restored (then set target.pvcNameSuffix).",
      ),
    at: withRules(z.string().max(64), [
      {
        rule: `self == '${AT_LATEST}' || self.matches(${celRegex(RFC3339_PATTERN)})`,
        message: "at must be 'latest' or an RFC 3339 time such as 2025-06-01T02:00:00Z",
        check: (value) => value === AT_LATEST || new RegExp(RFC3339_PATTERN).test(value),
      },
    ])
      .default(AT_LATEST)
      .describe(
        'Which snapshot (or, for a policy with consistency Group, which VolumeGroupSnapshot): "latest" (the default) for the newest ready one, or an RFC 3339 time such as 2025-06-01T02:00:00Z for the newest ready one taken at or before it.',
      ),
  })
  .describe(
    'Restore what a BackupPolicy took: a snapshot of one PVC, or the members of one of its VolumeGroupSnapshots.',
  );
export type BackupPolicySource = z.infer<typeof BackupPolicySourceSchema>;

export const RestoreSourceSchema = withRules(
  z.strictObject({
    volumeSnapshotName: objectName('source.volumeSnapshotName')
      .optional()
      .describe('The VolumeSnapshot (same namespace) to restore.'),
    backupPolicy: BackupPolicySourceSchema.optional(),
  }),
  [
    exactlyOneOf(
      ['volumeSnapshotName', 'backupPolicy'],
      'exactly one of source.volumeSnapshotName or source.backupPolicy must be set',
    ),
  ],
).describe(
  'The snapshot to restore: exactly one of volumeSnapshotName or backupPolicy. The snapshot must be ready to use.',
);
export type RestoreSource = z.infer<typeof RestoreSourceSchema>;

const sizeSchema = withRules(
  z
    .union([z.int().positive(), z.string().max(QUANTITY_MAX_LENGTH)])
    .meta({ 'x-kubernetes-int-or-string': true, maxLength: QUANTITY_MAX_LENGTH }),
  [
    {
      rule: "type(self) == int ? self > 0 : isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))",
      message: 'size must be a positive quantity such as 20Gi',
      check: (value) => (typeof value === 'number' ? value > 0 : isPositiveQuantity(value)),
    },
  ],
)
  .transform((value) => String(value))
  .describe(
    'The capacity of the new PVC, e.g. 20Gi; at least the restore size of the snapshot. Defaults to the restore size of the snapshot, or to the size of the source PVC when it is larger.',
  );

export const ACCESS_MODES = [
  'ReadWriteOnce',
  'ReadOnlyMany',
  'ReadWriteMany',
  'ReadWriteOncePod',
] as const;

/** The longest target.pvcNameSuffix: a DNS label's length. */
export const PVC_NAME_SUFFIX_MAX_LENGTH = 63;
/** A suffix that keeps a PVC name a DNS-1123 name: lowercase letters, digits and '-', ending alphanumeric. */
export const PVC_NAME_SUFFIX_PATTERN = '^[-a-z0-9]*[a-z0-9]$';

export const WORKLOAD_KINDS = ['StatefulSet'] as const;

export const WorkloadRefSchema = z
  .strictObject({
    kind: z.enum(WORKLOAD_KINDS).describe('The kind of the workload: StatefulSet.'),
    name: objectName('target.workload.name').describe('The workload, in this namespace.'),
  })
  .describe(
    "Mode Swap: the StatefulSet whose PVCs are replaced in place by volumes restored from the policy's snapshots (of each PVC the workload mounts, or only of source.backupPolicy.pvcName). The old volumes are kept (reclaim policy Retain) and named in status.swap.",
  );
export type WorkloadRef = z.infer<typeof WorkloadRefSchema>;

const targetFields = z.strictObject({
  pvcName: objectName('target.pvcName')
    .optional()
    .describe(
      'The name of the PVC to create in this namespace. It must not exist yet: a restore never overwrites a volume.',
    ),
  pvcNameSuffix: withRules(z.string().min(1).max(PVC_NAME_SUFFIX_MAX_LENGTH), [
    matches(
      PVC_NAME_SUFFIX_PATTERN,
      "target.pvcNameSuffix must be lowercase letters, digits and '-', ending with a letter or digit, such as -restored",
    ),
  ])
    .optional()
    .describe(
      `Name each new PVC after its source PVC with this suffix appended, e.g. -restored restores data into data-restored. Needed to restore every member of a group (source.backupPolicy without pvcName); at most ${PVC_NAME_SUFFIX_MAX_LENGTH} characters. None of the new PVCs may exist yet.`,
    ),
  storageClassName: objectName('target.storageClassName')
    .optional()
    .describe(
      'The StorageClass of the new PVC. Defaults to that of the source PVC while it exists, otherwise to the cluster default.',
    ),
  size: sizeSchema.optional(),
  accessModes: setOf(z.enum(ACCESS_MODES), 4, 'accessModes')
    .min(1)
    .optional()
    .describe(
      'The access modes of the new PVC. Defaults to those of the source PVC while it exists, otherwise to ReadWriteOnce.',
    ),
  workload: WorkloadRefSchema.optional(),
  labels: labelMap('target.labels').optional().describe('Labels to put on the new PVC.'),
  annotations: annotationMap('target.annotations')
    .optional()
    .describe('Annotations to put on the new PVC.'),
});

export const RestoreTargetSchema = withRules(targetFields, [
  exactlyOneOf(
    ['pvcName', 'pvcNameSuffix', 'workload'],
    'exactly one of target.pvcName, target.pvcNameSuffix or target.workload must be set',
  ),
]).describe(
  'Where the snapshot goes: exactly one of pvcName or pvcNameSuffix (mode New: the PVC, or PVCs, one per group member, to create), or workload (mode Swap: the StatefulSet whose PVCs are swapped for restored ones).',
);
export type RestoreTarget = z.infer<typeof RestoreTargetSchema>;

export const RestoreJobSpecSchema = withRules(
  z.strictObject({
    source: RestoreSourceSchema,
    target: RestoreTargetSchema,
    mode: z
      .enum(RESTORE_MODES)
      .default('New')
      .describe(
        'New (the default): restore into new PVCs (target.pvcName or target.pvcNameSuffix). Swap: restore in place under the names of the PVCs of target.workload: its volumes are restored, it is scaled to 0, its old volumes are retained, the restored ones bound under the original PVC names, and it is scaled back; if it is not Ready within readyTimeoutSeconds, the old volumes are put back. Needs the controller flag --restore-swap (chart value restore.swap.enabled).',
      ),
    readyTimeoutSeconds: z
      .int()
      .min(1)
      .max(86400)
      .default(DEFAULT_READY_TIMEOUT_SECONDS)
      .describe(
        `Mode Swap: how long the workload may take, in seconds from being scaled to 0, to be back with every replica Ready on the restored volumes; past it the old volumes are put back (reason RolledBack). Default ${DEFAULT_READY_TIMEOUT_SECONDS}.`,
      ),
    pendingDeadlineSeconds: z
      .int()
      .min(1)
      .default(DEFAULT_PENDING_DEADLINE_SECONDS)
      .describe(
        `How long the RestoreJob may stay Pending, in seconds from its creation, waiting for its snapshot to become ready to use, including while the snapshot reports an error the snapshot controller may still recover from; default ${DEFAULT_PENDING_DEADLINE_SECONDS} (1 hour). Past it the RestoreJob fails, naming the snapshot and its last error.`,
      ),
  }),
  [
    immutable(
      'spec is immutable: to restore something else, create another RestoreJob (deleting this one never deletes data)',
    ),
    {
      rule: '!has(self.target.pvcNameSuffix) || has(self.source.backupPolicy)',
      message:
        'target.pvcNameSuffix names each new PVC after its source PVC and needs source.backupPolicy; to restore source.volumeSnapshotName set target.pvcName',
      fieldPath: '.target.pvcNameSuffix',
      check: ({ source, target }) =>
        target.pvcNameSuffix === undefined || source.backupPolicy !== undefined,
    },
    {
      rule: '!has(self.source.backupPolicy) || has(self.source.backupPolicy.pvcName) || has(self.target.pvcNameSuffix) || has(self.target.workload)',
      message:
        'source.backupPolicy without pvcName restores every member of a group, each into its source PVC name plus target.pvcNameSuffix: set target.pvcNameSuffix, or set source.backupPolicy.pvcName to restore one PVC',
      fieldPath: '.target',
      check: ({ source, target }) =>
        source.backupPolicy === undefined ||
        source.backupPolicy.pvcName !== undefined ||
        target.pvcNameSuffix !== undefined ||
        target.workload !== undefined,
    },
    {
      rule: "(has(self.mode) && self.mode == 'Swap') == has(self.target.workload)",
      message:
        'mode Swap restores in place and needs target.workload (the StatefulSet), and target.workload needs mode Swap; to restore into new PVCs use mode New with target.pvcName or target.pvcNameSuffix',
      fieldPath: '.mode',
      check: ({ mode, target }) => (mode === 'Swap') === (target.workload !== undefined),
    },
    {
      rule: "!has(self.mode) || self.mode != 'Swap' || has(self.source.backupPolicy)",
      message:
        "mode Swap restores each PVC of the workload from a BackupPolicy's snapshots: set source.backupPolicy",
      fieldPath: '.source',
      check: ({ mode, source }) => mode !== 'Swap' || source.backupPolicy !== undefined,
    },
  ],
).describe('What to restore and where. Immutable once created.');
export type RestoreJobSpec = z.infer<typeof RestoreJobSpecSchema>;
export type RestoreJobSpecInput = z.input<typeof RestoreJobSpecSchema>;

export const RESTORED_PVC_PHASES = ['Pending', 'Provisioning', 'Bound', 'Lost'] as const;
export type RestoredPvcPhase = (typeof RESTORED_PVC_PHASES)[number];

export const RestoredPvcSchema = z
  .strictObject({
    name: objectName('pvcs[].name').describe('The PVC created (or to be created) for the restore.'),
    sourcePvc: objectName('pvcs[].sourcePvc').describe('The PVC the member snapshot was taken of.'),
    snapshotName: objectName('pvcs[].snapshotName').describe(
      'The member VolumeSnapshot the PVC is restored from.',
    ),
    phase: z
      .enum(RESTORED_PVC_PHASES)
      .describe('Pending (not created yet), Provisioning (created, not Bound yet), Bound or Lost.'),
  })
  .describe('One PVC of a restore.');
export type RestoredPvc = z.infer<typeof RestoredPvcSchema>;

/**
 * The steps of a Swap restore, in order; RollingBack -> RolledBack when the workload is not
 * Ready in time (or the job is deleted while the workload is down).
 */
export const SWAP_STEPS = [
  'RestoringVolumes',
  'RetainingVolumes',
  'ScalingDown',
  'ReplacingClaims',
  'WaitingForReady',
  'Done',
  'RollingBack',
  'RolledBack',
] as const;
export type SwapStep = (typeof SWAP_STEPS)[number];

export const SwapVolumeSchema = z
  .strictObject({
    claim: objectName('swap.volumes[].claim').describe('The PVC of the workload, by its name.'),
    snapshotName: objectName('swap.volumes[].snapshotName').describe(
      'The VolumeSnapshot it is restored from.',
    ),
    restoredClaim: objectName('swap.volumes[].restoredClaim').describe(
      'The PVC the snapshot is first restored into, deleted once its volume is bound under the original name.',
    ),
    restoredVolume: objectName('swap.volumes[].restoredVolume')
      .optional()
      .describe('The PV restored from the snapshot, once provisioned.'),
    retainedVolume: objectName('swap.volumes[].retainedVolume')
      .optional()
      .describe(
        'The PV the PVC was bound to before the swap: set to reclaim policy Retain and kept, so nothing is lost; delete it once the restored data is trusted.',
      ),
  })
  .describe('One PVC of the workload swapped for a restored volume.');
export type SwapVolume = z.infer<typeof SwapVolumeSchema>;

export const SwapStatusSchema = z
  .strictObject({
    step: z
      .enum(SWAP_STEPS)
      .describe(
        'Where the swap is: RestoringVolumes, RetainingVolumes, ScalingDown, ReplacingClaims, WaitingForReady (scaled back), Done; or RollingBack, RolledBack.',
      ),
    workload: objectName('swap.workload').describe('The StatefulSet swapped.'),
    replicas: z
      .int()
      .min(0)
      .optional()
      .describe('The replicas of the workload before the swap, which it returns to.'),
    scaledDownAt: dateTime()
      .optional()
      .describe('When the workload was scaled to 0; readyTimeoutSeconds counts from here.'),
    rollbackCause: z
      .string()
      .max(MAX_MESSAGE_LENGTH)
      .optional()
      .describe('Why the swap is rolled back, once it is.'),
    volumes: mapListOf(SwapVolumeSchema, 'claim', MAX_STATUS_PVCS, 'swap.volumes').describe(
      'Each PVC swapped, with its snapshot, its restored volume and its old, retained volume.',
    ),
  })
  .describe('Mode Swap: the step the swap is in and the volumes it swaps.');
export type SwapStatus = z.infer<typeof SwapStatusSchema>;

export const RestoreJobStatusSchema = z
  .strictObject({
    observedGeneration: observedGeneration(),
    phase: z
      .enum(RESTORE_JOB_PHASES)
      .optional()
      .describe(
        'Pending (waiting for a ready snapshot; the Ready condition says why), Restoring (the PVC exists and is being provisioned), Succeeded (the PVC is Bound) or Failed (see message).',
      ),
    source: z.string().max(1024).optional().describe('The source in one line, for kubectl get.'),
    target: z
      .string()
      .max(1024)
      .optional()
      .describe(
        'The target in one line, for kubectl get: the PVC, or <pvc><suffix> when each member of a group gets its own.',
      ),
    snapshotName: objectName('snapshotName')
      .optional()
      .describe('The VolumeSnapshot being restored, once resolved.'),
    pvcName: objectName('pvcName')
      .optional()
      .describe('The PVC created for the restore, when the restore has one target.'),
    volumeGroupSnapshotName: objectName('volumeGroupSnapshotName')
      .optional()
      .describe('The VolumeGroupSnapshot whose members are restored, once chosen.'),
    pvcs: mapListOf(RestoredPvcSchema, 'name', MAX_STATUS_PVCS, 'pvcs')
      .optional()
      .describe(
        `Every PVC a restore from a VolumeGroupSnapshot creates, with its source and how far it is (at most ${MAX_STATUS_PVCS}).`,
      ),
    swap: SwapStatusSchema.optional(),
    conditions: conditions().optional(),
    startTime: dateTime().optional().describe('When the restore started.'),
    completionTime: dateTime().optional().describe('When the restore succeeded or failed.'),
    message: z
      .string()
      .max(MAX_MESSAGE_LENGTH)
      .optional()
      .describe(
        `What the restore is waiting for, or why it failed, at most ${MAX_MESSAGE_LENGTH} characters.`,
      ),
  })
  .describe('The observed state of the restore, written by snapback.');
export type RestoreJobStatus = z.infer<typeof RestoreJobStatusSchema>;

/** The one-line source a RestoreJob's status shows in the SOURCE column. */
export function restoreSourceSummary(source: RestoreSource): string {
  if (source.volumeSnapshotName !== undefined) return `snapshot/${source.volumeSnapshotName}`;
  const { name, pvcName, at } = source.backupPolicy!;
  if (pvcName === undefined) return `policy/${name} group at ${at}`;
  return `policy/${name} pvc/${pvcName} at ${at}`;
}

/** The one-line target a RestoreJob's status shows in the TARGET column. */
export function restoreTargetSummary(target: RestoreTarget): string {
  if (target.workload) return `swap ${target.workload.kind.toLowerCase()}/${target.workload.name}`;
  return target.pvcName ?? `<pvc>${target.pvcNameSuffix}`;
}

// ---------------------------------------------------------------------------------------------
// Whole objects

const ObjectMetaSchema = z.looseObject({
  name: z.string().optional(),
  namespace: z.string().optional(),
});

export const BackupPolicySchema = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(BACKUP_POLICY_KIND),
  metadata: ObjectMetaSchema,
  spec: BackupPolicySpecSchema,
  status: BackupPolicyStatusSchema.optional(),
});

export const RestoreJobSchema = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(RESTORE_JOB_KIND),
  metadata: ObjectMetaSchema,
  spec: RestoreJobSpecSchema,
  status: RestoreJobStatusSchema.optional(),
});

export interface BackupPolicy {
  apiVersion: typeof API_VERSION;
  kind: typeof BACKUP_POLICY_KIND;
  metadata: ApiObjectMeta;
  spec: BackupPolicySpec;
  status?: BackupPolicyStatus;
}

export interface RestoreJob {
  apiVersion: typeof API_VERSION;
  kind: typeof RESTORE_JOB_KIND;
  metadata: ApiObjectMeta;
  spec: RestoreJobSpec;
  status?: RestoreJobStatus;
}
