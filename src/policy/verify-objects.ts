/**
 * The objects of a restore drill and what is read back from them: the scratch PVCs restored
 * from the snapshots, the Job that checks them read-only, and the drill's result from the Job,
 * its pod and the pod's Events. Pure builders and readers; verify.ts decides when.
 */
import type { CoreV1Event, V1Job } from '@kubernetes/client-node';
import type { ApiObjectMeta, BackupPolicy, Verification } from '../api/index.js';
import {
  API_VERSION,
  BACKUP_POLICY_KIND,
  LABEL_POLICY,
  LABEL_VERIFY,
  SNAPSHOT_GROUP,
} from '../api/index.js';
import type { ResourceType } from '../kube/index.js';
import type { Pod } from './hooks.js';
import { labelValue, shortHash } from './naming.js';
import type { Pvc } from './objects.js';
import { BackupPolicyReason } from './reasons.js';

export type Job = Omit<V1Job, 'metadata'> & { metadata: ApiObjectMeta };
export type PodEvent = Omit<CoreV1Event, 'metadata'> & { metadata: ApiObjectMeta };

export const Jobs: ResourceType = {
  group: 'batch',
  version: 'v1',
  plural: 'jobs',
  kind: 'Job',
  namespaced: true,
};

/** The label the Job controller puts on the pods of a Job. */
export const LABEL_JOB_NAME = 'batch.kubernetes.io/job-name';

/** Where the restored volumes are mounted in the drill container: /data/<source PVC>. */
export const DATA_DIR = '/data';

/**
 * The built-in check, per restored volume (each a mount point under /data, walked without
 * leaving it): it is read-only, every directory is walked and every file read to its end (find
 * fails when a directory or a file cannot be read). Then the spec's command; at the end, what
 * was read goes to `messageFile`.
 */
export const checkScript = (dataDir: string, messageFile = '/dev/termination-log'): string =>
  [
    'set -u',
    'files=0; dirs=0',
    `for d in ${dataDir}/*; do`,
    '  if touch "$d/.snapback-verify-write-test" 2>/dev/null; then echo "$d is writable: the scratch volume must be mounted read-only" >&2; exit 3; fi',
    '  find "$d" -xdev -type f -exec cat {} + >/dev/null || { echo "reading the files of $d failed (see the errors above)" >&2; exit 4; }',
    '  n=$(find "$d" -xdev -type f | wc -l) || exit 4; files=$((files + n))',
    '  n=$(find "$d" -xdev -type d | wc -l) || exit 4; dirs=$((dirs + n))',
    'done',
    'summary="read $files file(s) in $dirs directories"; echo "$summary"',
    'if [ "$#" -gt 0 ]; then "$@" || { code=$?; echo "verify command exited with code $code" >&2; exit $code; }; fi',
    // On success the summary is the termination message the drill's result quotes (on a
    // failure the container's log is, by terminationMessagePolicy FallbackToLogsOnError).
    `echo "$summary" > ${messageFile} 2>/dev/null || true`,
  ].join('\n');

export const BUILT_IN_CHECK = checkScript(DATA_DIR);

/**
 * The drill container reads every file whatever its owner (lost+found is root's, mode 0700):
 * root with no capability but reading past file permissions, on a read-only root file system.
 */
export const DRILL_SECURITY_CONTEXT = {
  runAsUser: 0,
  runAsGroup: 0,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'], add: ['DAC_READ_SEARCH'] },
};

/** Names of a drill's scratch objects: the policy, "verify", a hash of the drill and the index. */
export function scratchNames(
  policy: string,
  trigger: string,
  snapshots: readonly string[],
): { job: string; pvcs: string[] } {
  const hash = shortHash(policy, trigger, ...snapshots);
  const base = `${policy.slice(0, 40).replace(/[-.]+$/, '')}-verify-${hash}`;
  return { job: base, pvcs: snapshots.map((_, i) => `${base}-${i}`) };
}

/** Labels of every scratch object: matched with the name when anything is deleted. */
export function scratchLabels(policy: string): Record<string, string> {
  return { [LABEL_POLICY]: labelValue(policy), [LABEL_VERIFY]: labelValue(policy) };
}

function ownedBy(policy: BackupPolicy): ApiObjectMeta['ownerReferences'] {
  return [
    {
      apiVersion: API_VERSION,
      kind: BACKUP_POLICY_KIND,
      name: policy.metadata.name!,
      uid: policy.metadata.uid!,
    },
  ];
}

export interface ScratchSource {
  snapshot: string;
  /** The PVC it was taken of. */
  pvc: string;
  size: string;
  storageClassName?: string;
}

export function scratchPvc(policy: BackupPolicy, name: string, source: ScratchSource): Pvc {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name,
      namespace: policy.metadata.namespace!,
      labels: scratchLabels(policy.metadata.name!),
      ownerReferences: ownedBy(policy),
    },
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: source.size } },
      dataSource: { apiGroup: SNAPSHOT_GROUP, kind: 'VolumeSnapshot', name: source.snapshot },
      ...(source.storageClassName ? { storageClassName: source.storageClassName } : {}),
    },
  };
}

export interface DrillJobInput {
  policy: BackupPolicy;
  verification: Verification;
  image: string;
  command?: readonly string[];
  activeDeadlineSeconds: number;
}

export function drillJob({
  policy,
  verification,
  image,
  command,
  activeDeadlineSeconds,
}: DrillJobInput): Job {
  const labels = scratchLabels(policy.metadata.name!);
  const volumes = verification.pvcs.map((claimName, i) => ({
    name: `data-${i}`,
    persistentVolumeClaim: { claimName, readOnly: true },
  }));
  const mounts = verification.sourcePvcs.map((pvc, i) => ({
    name: `data-${i}`,
    mountPath: `${DATA_DIR}/${pvc}`,
    readOnly: true,
  }));
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: verification.job,
      namespace: policy.metadata.namespace!,
      labels,
      ownerReferences: ownedBy(policy),
    },
    spec: {
      backoffLimit: 0,
      activeDeadlineSeconds,
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: 'Never',
          volumes,
          containers: [
            {
              name: 'verify',
              image,
              command: ['bash', '-c', BUILT_IN_CHECK, 'verify', ...(command ?? [])],
              volumeMounts: mounts,
              securityContext: DRILL_SECURITY_CONTEXT,
              terminationMessagePolicy: 'FallbackToLogsOnError',
            },
          ],
        },
      },
    },
  };
}

/** What a drill's Job, pod and the pod's Events say, as observed. */
export interface DrillObjects {
  job?: Job;
  pods: readonly Pod[];
  events: readonly PodEvent[];
  /** Events of the scratch PVCs (the provisioner says there why a restore fails). */
  pvcEvents?: readonly PodEvent[];
  /** The scratch PVCs of the drill that still exist. */
  pvcs: readonly string[];
}

export interface DrillOutcome {
  result: 'Succeeded' | 'Failed';
  reason: BackupPolicyReason;
  message: string;
}

/**
 * FailedMount or ProvisioningFailed Events (summed counts) past which a drill fails without
 * waiting for its timeout: one may be a transient error the next try gets past.
 */
export const FAILED_MOUNT_LIMIT = 2;

/** The drill's result once the Job or the pod's Events give one; undefined: still running. */
export function drillOutcome(
  objects: DrillObjects,
  timeoutSeconds: number,
): DrillOutcome | undefined {
  const conditions = objects.job?.status?.conditions ?? [];
  const holds = (type: string) => conditions.find((c) => c.type === type && c.status === 'True');
  if (holds('Complete')) {
    return {
      result: 'Succeeded',
      reason: BackupPolicyReason.VerificationSucceeded,
      message: `the restored volume was read in full${podMessage(objects.pods, 'succeeded')}`,
    };
  }
  const failed = holds('Failed');
  if (failed?.reason === 'DeadlineExceeded') return timedOut(timeoutSeconds);
  if (failed) {
    return {
      result: 'Failed',
      reason: BackupPolicyReason.VerificationFailed,
      message: `the check failed${podMessage(objects.pods, 'failed')}`,
    };
  }
  return restoreFailure(objects.pvcEvents ?? []) ?? mountFailure(objects.events);
}

export function timedOut(timeoutSeconds: number): DrillOutcome {
  return {
    result: 'Failed',
    reason: BackupPolicyReason.VerificationTimedOut,
    message: `timed out after ${timeoutSeconds} s (spec.verify.timeoutSeconds): the scratch volume was not restored and checked in time`,
  };
}

/** The last of the Events with this reason, once they have happened often enough. */
function repeated(events: readonly PodEvent[], reason: string): PodEvent | undefined {
  const matching = events.filter((e) => e.reason === reason);
  const count = matching.reduce((sum, e) => sum + (e.count ?? 1), 0);
  return count >= FAILED_MOUNT_LIMIT ? matching.at(-1) : undefined;
}

/** The snapshot cannot be restored: a corrupt or lost backup, the very thing a drill is for. */
function restoreFailure(events: readonly PodEvent[]): DrillOutcome | undefined {
  const last = repeated(events, 'ProvisioningFailed');
  if (!last) return undefined;
  return {
    result: 'Failed',
    reason: BackupPolicyReason.ScratchRestoreFailed,
    message: `the snapshot cannot be restored into scratch PVC ${last.involvedObject?.name ?? ''}: ${last.message ?? 'ProvisioningFailed'}`,
  };
}

function mountFailure(events: readonly PodEvent[]): DrillOutcome | undefined {
  const last = repeated(events, 'FailedMount');
  if (!last) return undefined;
  return {
    result: 'Failed',
    reason: BackupPolicyReason.VolumeMountFailed,
    message: `the restored volume cannot be mounted: ${last.message ?? 'FailedMount'}`,
  };
}

/** ": exit code N: <termination message>" of the drill container, when the pod says. */
function podMessage(pods: readonly Pod[], verb: string): string {
  for (const pod of pods) {
    const state = pod.status?.containerStatuses?.find((c) => c.name === 'verify')?.state;
    const terminated = state?.terminated;
    if (!terminated) continue;
    const text = (terminated.message ?? '').trim();
    const tail = text.length > 600 ? `...${text.slice(-600)}` : text;
    return `: the check ${verb} with exit code ${terminated.exitCode}${tail ? `: ${tail}` : ''}`;
  }
  return '';
}
