import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The Prometheus metrics snapback exposes on /metrics. Each process builds its own
 * `SnapbackMetrics` and hands the parts a component needs to that component, so tests build a
 * fresh set per case instead of resetting a process-wide registry.
 */

/** Where a BackupPolicy-related series belongs; `policy` is '' for snapshots no policy owns. */
export interface PolicyLabels {
  namespace: string;
  policy: string;
}

export type ReconcileResult = 'success' | 'requeue' | 'error';

/** A throttled ECS call is counted once as `throttled`, not also as `error`. */
export type EcsOutcome = 'success' | 'throttled' | 'error';

export type RestoreResult = 'succeeded' | 'failed';

export interface SnapbackMetrics {
  readonly registry: Registry;
  /** VolumeSnapshots a BackupPolicy run created. */
  readonly snapshotsCreated: Counter<keyof PolicyLabels>;
  /** Snapshots that ended in an error (creation refused, VolumeSnapshot status.error). */
  readonly snapshotsFailed: Counter<keyof PolicyLabels>;
  /** Snapshots deleted by retention. */
  readonly snapshotsPruned: Counter<keyof PolicyLabels>;
  /** RestoreJobs that reached a final phase. */
  readonly restores: Counter<'namespace' | 'result'>;
  /**
   * CSI calls as the caller sees them (the snapshotter sidecar and the provisioner), whatever
   * the driver, labelled with the gRPC status code name (OK, FAILED_PRECONDITION, ...).
   */
  readonly csiOperationDuration: Histogram<'driver' | 'method' | 'code'>;
  readonly reconcileDuration: Histogram<'controller' | 'result'>;
  readonly ecsApiRequests: Counter<'api' | 'outcome'>;
  readonly workQueueDepth: Gauge<'controller'>;
  /** Adds a source the work queue depth gauge reads at each scrape. */
  observeQueueDepths(source: () => Record<string, number>): void;
  /** Unix seconds of the policy's last run in which every selected PVC got a ready snapshot. */
  readonly policyLastSuccess: Gauge<keyof PolicyLabels>;
  /** Restore drills (spec.verify) that ended, by result (Succeeded, Failed). */
  readonly verifications: Counter<keyof PolicyLabels | 'result'>;
  /**
   * Unix seconds of the policy's last successful restore drill; until one succeeds, of when
   * the policy got spec.verify, so a policy whose drills never succeed goes stale too.
   */
  readonly policyLastVerificationSuccess: Gauge<keyof PolicyLabels>;
}

export interface MetricsOptions {
  /**
   * Node.js process metrics (CPU, memory, event loop lag, GC, handles). prom-client installs a
   * GC observer and an event-loop monitor for each registry it collects for, so tests that
   * build many registries turn this off. Default true.
   */
  processMetrics?: boolean;
}

/** From a millisecond local-disk copy to a cloud snapshot that takes minutes to be cut. */
const CSI_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const RECONCILE_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export function createMetrics(options: MetricsOptions = {}): SnapbackMetrics {
  const registry = new Registry();
  const registers = [registry];
  if (options.processMetrics ?? true) {
    collectDefaultMetrics({ register: registry });
  }
  const queueSources: (() => Record<string, number>)[] = [];
  /** A counter of one BackupPolicy's snapshots. */
  const perPolicy = (name: string, help: string) =>
    new Counter({ name, help, labelNames: ['namespace', 'policy'] as const, registers });
  return {
    registry,
    observeQueueDepths: (source) => queueSources.push(source),
    snapshotsCreated: perPolicy(
      'snapback_snapshots_created_total',
      'VolumeSnapshots created by BackupPolicy runs.',
    ),
    snapshotsFailed: perPolicy(
      'snapback_snapshots_failed_total',
      'Snapshots that failed to be created or became ready with an error.',
    ),
    snapshotsPruned: perPolicy(
      'snapback_snapshots_pruned_total',
      'VolumeSnapshots deleted by BackupPolicy retention.',
    ),
    restores: new Counter({
      name: 'snapback_restores_total',
      help: 'RestoreJobs that reached a final phase, by result.',
      labelNames: ['namespace', 'result'],
      registers,
    }),
    csiOperationDuration: new Histogram({
      name: 'snapback_csi_operation_duration_seconds',
      help: 'Duration of CSI calls made by snapback, by driver, method and gRPC status code.',
      labelNames: ['driver', 'method', 'code'],
      buckets: CSI_BUCKETS,
      registers,
    }),
    reconcileDuration: new Histogram({
      name: 'snapback_reconcile_duration_seconds',
      help: 'Duration of one reconcile of one object, by controller and result.',
      labelNames: ['controller', 'result'],
      buckets: RECONCILE_BUCKETS,
      registers,
    }),
    ecsApiRequests: new Counter({
      name: 'snapback_ecs_api_requests_total',
      help: 'Alibaba Cloud ECS API calls, by API and outcome (success, throttled, error).',
      labelNames: ['api', 'outcome'],
      registers,
    }),
    workQueueDepth: new Gauge({
      name: 'snapback_workqueue_depth',
      help: 'Keys waiting in a controller work queue.',
      labelNames: ['controller'],
      registers,
      collect() {
        for (const source of queueSources) {
          for (const [controller, depth] of Object.entries(source())) {
            this.set({ controller }, depth);
          }
        }
      },
    }),
    policyLastSuccess: new Gauge({
      name: 'snapback_policy_last_success_timestamp_seconds',
      help: 'Unix time of the last BackupPolicy run in which every selected PVC got a ready snapshot.',
      labelNames: ['namespace', 'policy'],
      registers,
    }),
    verifications: new Counter({
      name: 'snapback_verifications_total',
      help: 'BackupPolicy restore drills that ended, by result (Succeeded, Failed).',
      labelNames: ['namespace', 'policy', 'result'],
      registers,
    }),
    policyLastVerificationSuccess: new Gauge({
      name: 'snapback_policy_last_verification_success_timestamp_seconds',
      help: 'Unix time of the last successful BackupPolicy restore drill, or of when the policy got spec.verify while none has succeeded.',
      labelNames: ['namespace', 'policy'],
      registers,
    }),
  };
}

/** Records how long `operation` took under `labels`; the result label comes from its outcome. */
export async function timeReconcile<T>(
  metrics: Pick<SnapbackMetrics, 'reconcileDuration'>,
  controller: string,
  operation: () => Promise<T>,
  resultOf: (value: T) => ReconcileResult = () => 'success',
): Promise<T> {
  const end = metrics.reconcileDuration.startTimer({ controller });
  try {
    const value = await operation();
    end({ result: resultOf(value) });
    return value;
  } catch (error) {
    end({ result: 'error' });
    throw error;
  }
}

/** Sets the policy's last-success gauge from a time (status.lastSuccessfulTime). */
export function recordPolicySuccess(
  metrics: Pick<SnapbackMetrics, 'policyLastSuccess'>,
  labels: PolicyLabels,
  time: Date,
): void {
  metrics.policyLastSuccess.set(labels, time.getTime() / 1000);
}

/**
 * Drops every series of a deleted BackupPolicy, so an alert on a stale last-success time does
 * not fire for a policy that no longer exists.
 */
export function forgetPolicy(metrics: SnapbackMetrics, labels: PolicyLabels): void {
  metrics.snapshotsCreated.remove(labels);
  metrics.snapshotsFailed.remove(labels);
  metrics.snapshotsPruned.remove(labels);
  metrics.policyLastSuccess.remove(labels);
  metrics.policyLastVerificationSuccess.remove(labels);
  for (const result of ['Succeeded', 'Failed']) metrics.verifications.remove({ ...labels, result });
}
