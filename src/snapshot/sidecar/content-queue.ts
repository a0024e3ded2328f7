/**
 * The shape both content queues of the CSI snapshotter share (./content-sidecar.ts for
 * VolumeSnapshotContents, ./group-content-sidecar.ts for VolumeGroupSnapshotContents): a
 * work queue with upstream's flags over the contents' informer, the classes' informer, our
 * own writes read first, a poll backoff per content that is not ready yet, and the CSI call
 * deadline. A subclass decides and acts in `sync`.
 */
import {
  Controller,
  ItemExponentialRateLimiter,
  type EventRecorder,
  type Informer,
  type InformerFactory,
  type KubeClient,
  type KubeObject,
  type ReconcileContext,
  type ReconcileResult,
  type ResourceType,
  type Runnable,
} from '../../kube/index.js';
import { silentLogger, type Logger } from '../../observability/logger.js';
import { systemClock, type Clock } from '../../util/clock.js';
import { ContentWrites } from './content-writes.js';
import type { ContentKind, ContentObject, StatusWithError } from './shared-plan.js';
import { isFinalCsiError, type SecretRef } from './plan.js';

/** What both content queues are built with (upstream's csi-snapshotter flags among them). */
export interface ContentQueueOptions {
  client: KubeClient;
  informers: InformerFactory;
  /** `--timeout`: the deadline of each CSI call (upstream default 1 min). */
  timeoutMs?: number;
  /** `--worker-threads` (upstream default 10). */
  workers?: number;
  /** `--retry-interval-start` / `--retry-interval-max` (upstream 1 s .. 5 min). */
  retryIntervalStartMs?: number;
  retryIntervalMaxMs?: number;
  clock?: Clock;
  logger?: Logger;
}

/** The kinds a content queue reads and writes. */
export interface ContentQueueKinds<S extends StatusWithError, C extends ContentObject<S>> {
  contents: ResourceType;
  classes: ResourceType;
  kind: ContentKind<S, C>;
  recorder: EventRecorder;
}

export abstract class ContentQueue<
  S extends StatusWithError,
  C extends KubeObject & { status?: S },
  K extends KubeObject,
> implements Runnable {
  readonly controller: Controller;
  protected readonly contents: Informer<C>;
  protected readonly classes: Informer<K>;
  protected readonly clock: Clock;
  protected readonly logger: Logger;
  protected readonly timeoutMs: number;
  /** Backoff between polls of a content that is not ready, as upstream's AddRateLimited. */
  protected readonly polls: ItemExponentialRateLimiter;
  /**
   * Our writes of each content: a reconcile that runs before the watch delivers our own write
   * must not act on the older cached copy (upstream keeps its own store for the same reason).
   */
  protected readonly writes: ContentWrites<S, C>;

  protected constructor(
    name: string,
    options: ContentQueueOptions,
    kinds: ContentQueueKinds<S, C>,
  ) {
    this.clock = options.clock ?? systemClock;
    this.logger = (options.logger ?? silentLogger()).child({ controller: name });
    this.timeoutMs = options.timeoutMs ?? 60_000;
    const start = options.retryIntervalStartMs ?? 1_000;
    const max = options.retryIntervalMaxMs ?? 300_000;
    this.polls = new ItemExponentialRateLimiter(start, max);
    this.contents = options.informers.informer<C>(kinds.contents);
    this.classes = options.informers.informer<K>(kinds.classes);
    this.controller = new Controller({
      name,
      reconcile: (key, context) => this.reconcile(key, context),
      workers: options.workers ?? 10,
      rateLimiter: new ItemExponentialRateLimiter(start, max),
      logger: options.logger,
    });
    this.controller.watch(this.contents, {
      updatePredicate: (previous, next) =>
        previous.metadata?.resourceVersion === next.metadata?.resourceVersion ||
        kinds.kind.changeNeedsSync(previous, next),
    });
    this.writes = new ContentWrites(this.contents, {
      client: options.client,
      resource: kinds.contents,
      kind: kinds.kind,
      recorder: kinds.recorder,
      clock: this.clock,
      logger: this.logger,
    });
  }

  start(signal?: AbortSignal): Promise<void> {
    return this.controller.start(signal);
  }

  stop(): Promise<void> {
    return this.controller.stop();
  }

  get queueDepth(): number {
    return this.controller.queueDepth;
  }

  /** One sync of the content named `key`; a content that is gone is forgotten. */
  async reconcile(key: string, context?: ReconcileContext): Promise<ReconcileResult> {
    const content = this.writes.get(key);
    if (!content) {
      this.polls.forget(key);
      this.writes.view.forget(key);
      return;
    }
    return this.sync(key, content, context);
  }

  /** The next step for a content that exists (upstream's syncContent). */
  protected abstract sync(
    key: string,
    content: C,
    context?: ReconcileContext,
  ): Promise<ReconcileResult>;

  /**
   * A create call of the driver, made safe to retry: the Secret it takes is read (a failure
   * recorded as `secretFailure` words it); the being-created annotation is set before the
   * call, because a call that timed out may still cut a snapshot, and removed when the driver
   * has failed for good; a failed call is recorded on the content as `callFailure` words it.
   * Returns the content as last written and the driver's answer; `recordCut` finishes.
   */
  protected async cut<R>(
    content: C,
    step: {
      secretRef: SecretRef | undefined;
      failureReason: string;
      secretFailure: (error: unknown) => string;
      call: (secrets: Record<string, string>) => Promise<R>;
      callFailure: (current: C, error: unknown) => string;
    },
  ): Promise<{ current: C; answer: R }> {
    const secrets = await this.recorded(content, step.failureReason, step.secretFailure, () =>
      this.writes.readSecret(step.secretRef, content),
    );
    let current = await this.writes.markBeingCreated(content);
    try {
      return { current, answer: await step.call(secrets) };
    } catch (error) {
      if (isFinalCsiError(error)) current = await this.writes.removeBeingCreated(current);
      const message = step.callFailure(current, error);
      await this.writes.recordFailure(current, step.failureReason, message);
      throw new Error(message, { cause: error });
    }
  }

  /**
   * Runs `step`; when it fails, the failure is recorded on the content with `reason`, worded by
   * `message`, and thrown on (the work queue then retries with backoff).
   */
  protected async recorded<R>(
    content: C,
    reason: string,
    message: (error: unknown) => string,
    step: () => Promise<R>,
    options: { keepReadyToUse?: boolean } = {},
  ): Promise<R> {
    try {
      return await step();
    } catch (error) {
      const text = message(error);
      await this.writes.recordFailure(content, reason, text, options);
      throw new Error(text, { cause: error });
    }
  }

  /** A driver's report written to the content's status, then the poll it calls for. */
  protected async reported(
    key: string,
    content: C,
    status: S | undefined,
    report: { readyToUse: boolean },
  ): Promise<ReconcileResult> {
    await this.writes.writeStatus(content, status);
    return this.afterReport(key, report);
  }

  /** After a cut: the status the driver's answer gives, then the being-created mark goes. */
  protected async recordCut(content: C, status: S | undefined): Promise<void> {
    await this.writes.removeBeingCreated(await this.writes.writeStatus(content, status));
  }

  /** Nothing (more) to do for this content: its poll backoff is forgotten. */
  protected settled(key: string): ReconcileResult {
    this.polls.forget(key);
    return undefined;
  }

  /** Done once the driver reports the snapshot ready; else polled again after a backoff. */
  protected afterReport(key: string, report: { readyToUse: boolean }): ReconcileResult {
    return report.readyToUse ? this.settled(key) : { requeueAfter: this.polls.when(key) };
  }
}
