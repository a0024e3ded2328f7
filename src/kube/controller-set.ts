import { systemClock, type Clock } from '../util/clock.js';
import { silentLogger, type Logger } from '../observability/logger.js';
import type { KubeClient } from './client.js';
import { Controller, type Reconciler } from './controller.js';
import type { EventRecorder } from './events.js';
import { FreshView, OwnWrites } from './fresh-view.js';
import type { Informer } from './informer.js';
import type { Runnable } from './manager.js';
import { ItemExponentialRateLimiter } from './rate-limit.js';
import type { KubeObject, ResourceType } from './resource.js';

/** What every snapback controller is built with; clock and logger have defaults. */
export interface ControllerDependencies {
  client: KubeClient;
  recorder: EventRecorder;
  clock?: Clock;
  logger?: Logger;
}

/** Upstream's work-queue flags (`--worker-threads`, `--retry-interval-start` / `-max`). */
export interface WorkQueueFlags {
  /** Concurrent reconciles per queue (upstream default 10). */
  workers?: number;
  /** Retry backoff per key (upstream 1 s .. 5 min). */
  retryIntervalStartMs?: number;
  retryIntervalMaxMs?: number;
}

/** A work-queue controller with upstream's defaults: 10 workers, per-key backoff 1 s .. 5 min. */
export function upstreamController(
  name: string,
  reconcile: Reconciler,
  options: WorkQueueFlags & { logger?: Logger },
): Controller {
  return new Controller({
    name,
    reconcile,
    workers: options.workers ?? 10,
    logger: options.logger,
    rateLimiter: new ItemExponentialRateLimiter(
      options.retryIntervalStartMs ?? 1_000,
      options.retryIntervalMaxMs ?? 300_000,
    ),
  });
}

/**
 * The client, Event recorder, clock and logger (its lines name the controller) a controller's
 * reconcilers share.
 */
export abstract class ControllerBase {
  protected readonly client: KubeClient;
  protected readonly recorder: EventRecorder;
  protected readonly clock: Clock;
  protected readonly logger: Logger;

  protected constructor(name: string, options: ControllerDependencies) {
    this.client = options.client;
    this.recorder = options.recorder;
    this.clock = options.clock ?? systemClock;
    this.logger = (options.logger ?? silentLogger()).child({ controller: name });
  }

  /** Writes of one kind, remembered over its informer so reads see them at once. */
  protected ownWrites<T extends KubeObject>(
    resource: ResourceType,
    informer: Informer<T>,
  ): OwnWrites<T> {
    return new OwnWrites(this.client, resource, new FreshView(informer, this.clock));
  }
}

/**
 * Several work queues (one per kind, each with its own backoff) run and stopped together as
 * one Runnable; `queueDepth` sums them.
 */
export abstract class ControllerSet extends ControllerBase implements Runnable {
  private readonly controllers: Controller[] = [];

  protected constructor(
    readonly name: string,
    private readonly options: ControllerDependencies & WorkQueueFlags,
  ) {
    super(name, options);
  }

  /** A queue named `<set>-<suffix>`, started and stopped with the others. */
  protected queue(suffix: string, reconcile: Reconciler): Controller {
    const controller = upstreamController(`${this.name}-${suffix}`, reconcile, this.options);
    this.controllers.push(controller);
    return controller;
  }

  async start(signal?: AbortSignal): Promise<void> {
    this.logger.info('starting');
    await Promise.all(this.controllers.map((controller) => controller.start(signal)));
  }

  async stop(): Promise<void> {
    await Promise.all(this.controllers.map((controller) => controller.stop()));
    this.logger.info('stopped');
  }

  /** Items waiting in all the queues. */
  get queueDepth(): number {
    return this.controllers.reduce((sum, controller) => sum + controller.queueDepth, 0);
  }
}
