/**
 * The policy layer's controllers, BackupPolicy (./backup-policy-controller.ts) and RestoreJob
 * (./restore-job-controller.ts), wired onto a manager with the options `snapback controller`
 * gives them.
 */
import type { Controller, EventRecorder, Manager } from '../kube/index.js';
import { KubeEventRecorder } from '../kube/index.js';
import type { PodExecutor } from '../kube/exec.js';
import { silentLogger, type Logger } from '../observability/logger.js';
import type { SnapbackMetrics } from '../observability/metrics.js';
import { systemClock, type Clock } from '../util/clock.js';
import { BackupPolicyController } from './backup-policy-controller.js';
import { FIELD_MANAGER } from './policy-controller.js';
import { RestoreJobController } from './restore-job-controller.js';

export interface PolicyControllerOptions {
  clock?: Clock;
  logger?: Logger;
  events?: EventRecorder;
  /** Concurrent reconciles per controller. */
  workers?: number;
  /** How long a RestoreJob waits for a named snapshot to appear before failing. */
  restoreSourceWaitMs?: number;
  /**
   * Whether the cluster serves groupsnapshot.storage.k8s.io/v1: BackupPolicies with consistency
   * Group take groups, RestoreJobs restore them.
   */
  groupSnapshots?: boolean;
  /** Prometheus series to update (from `createMetrics()`); none when absent. */
  metrics?: PolicyMetrics;
  /**
   * Runs BackupPolicy hooks in pods (pods/exec). Without it hooks are disabled: a policy that
   * sets them reports HooksDisabled and takes no snapshot.
   */
  hookExecutor?: PodExecutor;
  /**
   * Whether RestoreJobs with mode Swap may act (scale the workload, retain and rebind PVs,
   * delete and recreate its PVCs). Without it such a job reports SwapDisabled and touches nothing.
   */
  restoreSwap?: boolean;
  /**
   * The image the Jobs of BackupPolicy restore drills (spec.verify) run. Without it drills are
   * disabled: a policy that sets spec.verify reports VerifyDisabled and runs none.
   */
  verifyImage?: string;
}

export type PolicyMetrics = Pick<
  SnapbackMetrics,
  | 'snapshotsCreated'
  | 'snapshotsFailed'
  | 'snapshotsPruned'
  | 'restores'
  | 'policyLastSuccess'
  | 'verifications'
  | 'policyLastVerificationSuccess'
  | 'reconcileDuration'
>;

export interface PolicyControllers {
  backupPolicies: Controller;
  restoreJobs: Controller;
}

/**
 * Adds both controllers (and the informers they need) to a manager, so they share caches
 * with anything else the process runs, such as the embedded snapshot stack.
 */
export function addPolicyControllers(
  manager: Manager,
  options: PolicyControllerOptions = {},
): PolicyControllers {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silentLogger();
  const client = manager.client;
  const recorder =
    options.events ?? new KubeEventRecorder({ client, component: FIELD_MANAGER, clock, logger });
  const shared = { client, informers: manager.informers, recorder, clock, logger };
  const backupPolicies = new BackupPolicyController({
    ...shared,
    workers: options.workers,
    metrics: options.metrics,
    hookExecutor: options.hookExecutor,
    groupSnapshots: options.groupSnapshots,
    verifyImage: options.verifyImage,
  }).controller;
  const restoreJobs = new RestoreJobController({
    ...shared,
    workers: options.workers,
    sourceWaitMs: options.restoreSourceWaitMs,
    groupSnapshots: options.groupSnapshots,
    restoreSwap: options.restoreSwap,
    metrics: options.metrics,
  }).controller;
  manager.add(backupPolicies).add(restoreJobs);
  return { backupPolicies, restoreJobs };
}
