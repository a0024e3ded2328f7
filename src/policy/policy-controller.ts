/**
 * The one shape of the policy layer's controllers (BackupPolicyController,
 * RestoreJobController) and what they share: their dependencies, metrics, cache and timed work
 * queue, the field manager of their writes, the by-name index, Events from a plan and status
 * written by difference.
 */
import type {
  Informer,
  InformerFactory,
  KubeObject,
  ReconcileResult,
  ResourceType,
} from '../kube/index.js';
import { Controller, patchStatusDiff } from '../kube/index.js';
import { ControllerBase, type ControllerDependencies } from '../kube/controller-set.js';
import { timeReconcile, type SnapbackMetrics } from '../observability/metrics.js';
import type { PlannedEvent } from './backup-policy.js';

/** The field manager (and event component) of the policy layer's writes. */
export const FIELD_MANAGER = 'snapback-policy-controller';

const INDEX_NAME = 'snapback.policy/by-name';

/** An index of objects by name alone, for `namespacesOf`. */
export const byName = { [INDEX_NAME]: (o: KubeObject) => [o.metadata!.name!] };

/** The namespaces holding an object of this name (the informer must carry `byName`). */
export function namespacesOf<T extends KubeObject>(informer: Informer<T>, name: string): string[] {
  return informer.byIndex(INDEX_NAME, name).map((o) => o.metadata!.namespace!);
}

/** What each policy controller is built with; `M` are the Prometheus series it updates. */
export interface PolicyControllerOptions<M> extends ControllerDependencies {
  informers: InformerFactory;
  /** Concurrent reconciles (default 4). */
  workers?: number | undefined;
  /** Prometheus series to update; none when absent. */
  metrics?: M | undefined;
}

/**
 * The shape of both policy controllers: the shared dependencies (ControllerBase), the metrics
 * they update, the cache of the kinds they read (built by `cache` from the informers) and one
 * work queue of `workers` reconciles at once, each timed in `reconcileDuration` when there are
 * metrics. A subclass adds its watches to `controller` and decides in `reconcile`.
 */
export abstract class PolicyController<
  M extends Pick<SnapbackMetrics, 'reconcileDuration'>,
  C,
> extends ControllerBase {
  readonly controller: Controller;
  protected readonly metrics: M | undefined;
  protected readonly cache: C;

  protected constructor(
    name: string,
    options: PolicyControllerOptions<M>,
    cache: (informers: InformerFactory) => C,
  ) {
    super(name, options);
    this.metrics = options.metrics;
    this.cache = cache(options.informers);
    const { metrics } = this;
    this.controller = new Controller({
      name,
      workers: options.workers ?? 4,
      logger: options.logger,
      reconcile: (key) =>
        metrics
          ? timeReconcile(
              metrics,
              name,
              () => this.reconcile(key),
              (r) => (r?.requeueAfter !== undefined ? 'requeue' : 'success'),
            )
          : this.reconcile(key),
    });
  }

  /** Converges the object `key` names (level-based: it reads the cache, not the event). */
  protected abstract reconcile(key: string): Promise<ReconcileResult>;

  /** Records a plan's Events on `obj`. */
  protected emit(obj: KubeObject, events: readonly PlannedEvent[]): void {
    for (const e of events) this.recorder.event(obj, e.type, e.reason, e.message);
  }

  /**
   * Writes status by difference, guarded by the resourceVersion the plan saw; returns the
   * object as written (or as it was, when nothing changed).
   */
  protected writeStatus<T extends KubeObject & { status?: object }>(
    type: ResourceType,
    obj: T,
    status: object,
  ): Promise<T> {
    return patchStatusDiff(this.client, type, obj, status, {
      guarded: true,
      fieldManager: FIELD_MANAGER,
    });
  }
}
