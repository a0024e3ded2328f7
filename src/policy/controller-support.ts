/**
 * What the policy layer's two controllers (BackupPolicyController, RestoreJobController) share:
 * their field manager, the by-name index, reconcile timing, Events from a plan and status
 * written by difference.
 */
import type {
  EventRecorder,
  Informer,
  KubeClient,
  KubeObject,
  ReconcileResult,
  ResourceType,
} from '../kube/index.js';
import { createMergePatch } from '../kube/index.js';
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

/** Times a reconcile in `reconcileDuration` when there are metrics. */
export function timed(
  metrics: Pick<SnapbackMetrics, 'reconcileDuration'> | undefined,
  controller: string,
  reconcile: () => Promise<ReconcileResult>,
): Promise<ReconcileResult> {
  return metrics
    ? timeReconcile(metrics, controller, reconcile, (r) =>
        r?.requeueAfter !== undefined ? 'requeue' : 'success',
      )
    : reconcile();
}

export function eventsFor(
  recorder: EventRecorder,
  obj: KubeObject,
  events: readonly PlannedEvent[],
): void {
  for (const e of events) recorder.event(obj, e.type, e.reason, e.message);
}

/**
 * Merge-patches status with the difference, guarded by the resourceVersion the plan saw;
 * returns the object as written (or as it was, when nothing changed).
 */
export async function writeStatus<
  T extends KubeObject & {
    metadata: { name?: string; namespace?: string; resourceVersion?: string };
    status?: object;
  },
>(client: KubeClient, type: ResourceType, obj: T, status: object): Promise<T> {
  const diff = createMergePatch(obj.status ?? {}, status);
  if (!diff) return obj;
  return client.patch<T>(
    type,
    obj.metadata.name!,
    obj.metadata.namespace,
    'merge',
    { metadata: { resourceVersion: obj.metadata.resourceVersion }, status: diff },
    { subresource: 'status', fieldManager: FIELD_MANAGER },
  );
}
