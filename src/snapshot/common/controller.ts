/**
 * What the snapshot controller (../controller/controller.ts) and its group paths
 * (../group/controller.ts) do the same way when they carry out a plan: the loop over its
 * actions, the reporting of a failed write, and the binding of a pre-provisioned content.
 */
import { ControllerSet } from '../../kube/controller-set.js';
import { isConflict, isNotFound } from '../../kube/errors.js';
import type { OwnWrites } from '../../kube/own-writes.js';
import { keyOf, type KubeObject } from '../../kube/resource.js';
import { errorMessage } from '../../observability/logger.js';
import { errorRecord, type EventAction, type FailureReport, type WithErrorStatus } from './plan.js';

/** An action of a plan: its failure may be reported on the object the plan is for. */
export type PlanAction = { type: string; onFailure?: FailureReport } | EventAction;

/** The object a plan is for: how it is written, and how its log lines name it. */
export interface PlanSubject<O extends KubeObject & WithErrorStatus> {
  object: O;
  writes: OwnWrites<O>;
  /** "snapshot", "group snapshot". */
  what: string;
}

/** A ControllerSet whose reconcilers carry out plans of ./plan.ts. */
export abstract class PlanControllerSet extends ControllerSet {
  /**
   * Carries out `actions` in order; `step` performs one and returns the object when it wrote
   * it. Events are recorded on the object. A write of the object itself (`ownWrites`) that
   * finds it gone ends the plan: nothing is left to converge. Any other failure is reported as
   * its action says, then thrown (the reconcile backs off).
   */
  protected async applyPlan<O extends KubeObject & WithErrorStatus, A extends PlanAction>(
    subject: PlanSubject<O>,
    actions: A[],
    ownWrites: ReadonlySet<A['type']>,
    step: (action: Exclude<A, EventAction>, object: O) => Promise<O | void>,
  ): Promise<void> {
    let object = subject.object;
    for (const action of actions) {
      try {
        if (isEventAction(action)) {
          this.recorder.event(object, action.eventType, action.reason, action.message);
        } else {
          object = (await step(action as Exclude<A, EventAction>, object)) ?? object;
        }
      } catch (error) {
        if (isNotFound(error) && ownWrites.has(action.type)) {
          subject.writes.view.forget(keyOf(object));
          return;
        }
        if (!isEventAction(action) && action.onFailure) {
          await this.reportFailure({ ...subject, object }, action.onFailure, error);
        }
        throw error;
      }
    }
  }

  /** Upstream's error reporting for a failed write: status.error and/or a Warning event. */
  private async reportFailure<O extends KubeObject & WithErrorStatus>(
    { object, writes, what }: PlanSubject<O>,
    report: FailureReport,
    error: unknown,
  ): Promise<void> {
    // conflicts are routine (a newer version exists) and retried at once by the next sync
    if (isConflict(error) || isNotFound(error)) return;
    if (report.precededBy) {
      const { reason, message, suffix = '' } = report.precededBy;
      this.recorder.event(object, 'Warning', reason, `${message} ${errorMessage(error)}${suffix}`);
    }
    const message = `${report.message} ${errorMessage(error)}`;
    if (!report.toStatus) {
      this.recorder.event(object, 'Warning', report.reason, message);
      return;
    }
    const record = errorRecord(
      object,
      report.reason,
      message,
      this.clock.now(),
      !report.keepReadyToUse,
    );
    if (!record) return;
    try {
      await writes.patchObject(object, { status: record.status }, { subresource: 'status' });
    } catch (statusError) {
      this.logger.warn(`could not record the error on the ${what}`, {
        namespace: object.metadata?.namespace,
        name: object.metadata?.name,
        error: errorMessage(statusError),
      });
    }
    this.recorder.event(object, record.event.eventType, record.event.reason, record.event.message);
  }
}

function isEventAction(action: PlanAction): action is EventAction {
  return action.type === 'event';
}

/**
 * Fills the uid (and, when given, the class) into a pre-provisioned content's ref; the patch
 * carries the cached resourceVersion, so a stale cache yields a conflict and a retry.
 */
export async function bindContent<C extends KubeObject>(
  writes: OwnWrites<C>,
  contentName: string,
  fields: { ref: string; className: string },
  uid: string,
  className: string | undefined,
): Promise<void> {
  const content = writes.view.get(contentName);
  await writes.patch(contentName, undefined, {
    metadata: { resourceVersion: content?.metadata?.resourceVersion },
    spec: {
      [fields.ref]: { uid },
      ...(className !== undefined ? { [fields.className]: className } : {}),
    },
  });
}
