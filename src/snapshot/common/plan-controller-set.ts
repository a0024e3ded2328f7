/**
 * What the snapshot controller (../controller/snapshot-controller.ts) and its group paths
 * (../group/group-snapshot-controller.ts) do the same way when they carry out a plan: the loop over its
 * actions, the reporting of a failed write, and the binding of a pre-provisioned content.
 */
import {
  ControllerSet,
  type ControllerDependencies,
  type WorkQueueFlags,
} from '../../kube/controller-set.js';
import { isConflict, isNotFound } from '../../kube/errors.js';
import type { InformerFactory } from '../../kube/informer-factory.js';
import type { OwnWrites } from '../../kube/fresh-view.js';
import { keyOf, type KubeObject } from '../../kube/resource.js';
import { errorMessage } from '../../observability/logger.js';
import {
  errorRecord,
  type EventAction,
  type FailureReport,
  type Plan,
  type WithErrorStatus,
} from './plan.js';

/** What the snapshot controller and its group paths are built with. */
export interface PlanControllerOptions extends ControllerDependencies, WorkQueueFlags {
  informers: InformerFactory;
}

/** An action of a plan: its failure may be reported on the object the plan is for. */
export type PlanAction = { type: string; onFailure?: FailureReport } | EventAction;

/** The kind a plan is for: how its objects are written, and how log lines name it. */
export interface PlanSubject<O extends KubeObject & WithErrorStatus, A extends PlanAction> {
  writes: OwnWrites<O>;
  /** "snapshot", "group snapshot". */
  what: string;
  /** The actions that write the object itself. */
  ownWrites: ReadonlySet<A['type']>;
  /** The name of the spec field that holds the object's class. */
  classField: string;
}

/** A ControllerSet whose reconcilers carry out plans of ./plan.ts. */
export abstract class PlanControllerSet extends ControllerSet {
  /**
   * Carries out `actions` on `initial` in order; `step` performs one and returns the object
   * when it wrote it. Events are recorded on the object. A write of the object itself
   * (`ownWrites`) that finds it gone ends the plan: nothing is left to converge. Any other
   * failure is reported as its action says, then thrown (the reconcile backs off).
   */
  protected async applyPlan<O extends KubeObject & WithErrorStatus, A extends PlanAction>(
    subject: PlanSubject<O, A>,
    initial: O,
    actions: A[],
    step: (action: Exclude<A, EventAction>, object: O) => Promise<O | void>,
  ): Promise<void> {
    let object = initial;
    for (const action of actions) {
      try {
        if (isEventAction(action)) {
          this.record(object, action);
        } else {
          object = (await step(action as Exclude<A, EventAction>, object)) ?? object;
        }
      } catch (error) {
        if (isNotFound(error) && subject.ownWrites.has(action.type)) {
          subject.writes.view.forget(keyOf(object));
          return;
        }
        if (!isEventAction(action) && action.onFailure) {
          await this.reportFailure(subject, object, action.onFailure, error);
        }
        throw error;
      }
    }
  }

  /**
   * Carries out a content's plan, whose writes report no failure of their own: events are
   * recorded on the content, `step` performs the rest; then the plan's retry, if any, fails
   * the reconcile.
   */
  protected async applyContentPlan<C extends KubeObject, A extends { type: string } | EventAction>(
    content: C,
    plan: Plan<A>,
    step: (action: Exclude<A, EventAction>) => Promise<unknown>,
  ): Promise<void> {
    for (const action of plan.actions) {
      if (isEventAction(action)) this.record(content, action);
      else await step(action as Exclude<A, EventAction>);
    }
    if (plan.retry) throw new Error(plan.retry);
  }

  /** Records the default class chosen for the object; the cached resourceVersion guards it. */
  protected setClassName<O extends KubeObject & WithErrorStatus, A extends PlanAction>(
    { writes, classField }: PlanSubject<O, A>,
    object: O,
    className: string,
  ): Promise<O> {
    return writes.patchObject(object, {
      metadata: { resourceVersion: object.metadata?.resourceVersion },
      spec: { [classField]: className },
    });
  }

  /**
   * Fills the uid (and, when given, the class) into a pre-provisioned content's ref; the patch
   * carries the cached resourceVersion, so a stale cache yields a conflict and a retry.
   */
  protected async bindContent<C extends KubeObject>(
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

  protected record(object: KubeObject, event: EventAction): void {
    this.recorder.event(object, event.eventType, event.reason, event.message);
  }

  /** Upstream's error reporting for a failed write: status.error and/or a Warning event. */
  private async reportFailure<O extends KubeObject & WithErrorStatus, A extends PlanAction>(
    { writes, what }: PlanSubject<O, A>,
    object: O,
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
    this.record(object, record.event);
  }
}

function isEventAction(action: PlanAction): action is EventAction {
  return action.type === 'event';
}
