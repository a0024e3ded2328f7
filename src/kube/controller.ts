import { TerminalError } from './errors.js';
import type { Informer } from './informer.js';
import { errorMessage, silentLogger, type Logger } from '../observability/logger.js';
import { defaultControllerRateLimiter, type RateLimiter } from './rate-limit.js';
import { keyOf, splitKey, type KubeObject } from './resource.js';
import { WorkQueue } from './workqueue.js';

/** What a reconcile asks for: nothing (converged), or another look after `requeueAfter` ms. */
export type ReconcileResult = { requeueAfter?: number } | void;

/** What a reconcile is given besides its key. */
export interface ReconcileContext {
  /**
   * Aborts when the controller must stop acting at once (its leadership was lost): pass it to
   * long calls and stop writing when it fires. A clean stop does not abort it.
   */
  signal: AbortSignal;
}

/**
 * Converges the object named by `key` (`namespace/name` or `name`) from the current cached
 * state. Throwing retries the key with backoff; throwing a `TerminalError` does not.
 */
export type Reconciler = (key: string, context: ReconcileContext) => Promise<ReconcileResult>;

/** Maps an object to the keys of this controller's work queue it should wake up. */
export type KeyMapper<T> = (obj: T) => string | string[] | undefined;

export interface ControllerWatchOptions<T> {
  /** Which keys an event enqueues; the object's own key by default. */
  toKeys?: KeyMapper<T>;
  /** Return false to ignore an update (e.g. a status-only change). Resyncs pass the same object twice. */
  updatePredicate?: (oldObj: T, newObj: T) => boolean;
}

export interface ControllerOptions {
  /** Used in logs. */
  name: string;
  reconcile: Reconciler;
  /** Concurrent reconciles (of different keys). */
  workers?: number;
  rateLimiter?: RateLimiter;
  logger?: Logger;
}

/**
 * informers -> handlers -> keys -> work queue -> `workers` reconcile loops. One key is never
 * reconciled twice at the same time; a key changed while being reconciled runs again after.
 */
export class Controller {
  readonly name: string;
  readonly queue: WorkQueue;
  private readonly reconcile: Reconciler;
  private readonly workers: number;
  private readonly logger: Logger;
  private readonly sources: Array<Informer<KubeObject>> = [];
  private readonly unsubscribes: Array<() => void> = [];
  private running: Promise<void>[] = [];
  private startAbort: AbortController | undefined;
  private readonly halted = new AbortController();

  constructor(options: ControllerOptions) {
    this.name = options.name;
    this.reconcile = options.reconcile;
    this.workers = Math.max(1, options.workers ?? 1);
    this.logger = (options.logger ?? silentLogger()).child({ controller: options.name });
    this.queue = new WorkQueue(options.rateLimiter ?? defaultControllerRateLimiter());
  }

  /** Enqueues keys for the informer's add, update and delete events. */
  watch<T extends KubeObject>(
    informer: Informer<T>,
    options: ControllerWatchOptions<T> = {},
  ): this {
    const toKeys = options.toKeys ?? keyOf;
    const enqueue = (obj: T) => {
      const keys = toKeys(obj);
      if (keys === undefined) return;
      for (const key of typeof keys === 'string' ? [keys] : keys) this.queue.add(key);
    };
    this.sources.push(informer as unknown as Informer<KubeObject>);
    this.unsubscribes.push(
      informer.on({
        add: enqueue,
        update: (oldObj, newObj) => {
          if (options.updatePredicate && !options.updatePredicate(oldObj, newObj)) return;
          enqueue(newObj);
        },
        delete: enqueue,
      }),
    );
    return this;
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  enqueueAfter(key: string, delayMs: number): void {
    this.queue.addAfter(key, delayMs);
  }

  /** Items ready for a worker (client-go's workqueue depth). */
  get queueDepth(): number {
    return this.queue.length;
  }

  get inFlight(): number {
    return this.queue.processingLength;
  }

  /**
   * Waits for the watched informers to sync, then starts the workers. When `signal` aborts
   * (leadership lost) no key is handed out any more and the reconciles in flight see their
   * context's signal abort; `stop()` then only waits for them to return.
   */
  async start(signal?: AbortSignal): Promise<void> {
    if (this.running.length > 0 || this.startAbort) return;
    this.startAbort = new AbortController();
    if (signal) {
      const halt = () => this.halt(signal.reason);
      if (signal.aborted) halt();
      else signal.addEventListener('abort', halt, { once: true });
    }
    await Promise.all(this.sources.map((source) => source.waitForSync(this.startAbort!.signal)));
    if (this.queue.isShuttingDown) return;
    this.logger.info('starting workers', { workers: this.workers });
    for (let i = 0; i < this.workers; i++) this.running.push(this.worker());
  }

  /** Stops handing out keys and waits for the reconciles in flight to finish. */
  async stop(): Promise<void> {
    this.startAbort?.abort();
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
    this.queue.shutDown();
    await Promise.all(this.running);
    this.running = [];
  }

  private halt(reason: unknown): void {
    if (this.halted.signal.aborted) return;
    this.queue.shutDown();
    this.startAbort?.abort();
    this.halted.abort(reason);
    this.logger.warn('stopped acting at once', { reason: errorMessage(reason) });
  }

  private async worker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      await this.process(key);
    }
  }

  private async process(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const log = this.logger.child(namespace ? { namespace, name } : { name });
    try {
      const result = await this.reconcile(key, { signal: this.halted.signal });
      this.queue.forget(key);
      if (result?.requeueAfter !== undefined && result.requeueAfter >= 0) {
        this.queue.addAfter(key, result.requeueAfter);
      }
    } catch (error) {
      if (this.halted.signal.aborted) {
        log.info('reconcile aborted', { error: errorMessage(error) });
      } else if (error instanceof TerminalError) {
        this.queue.forget(key);
        log.error('reconcile failed permanently', { error: errorMessage(error) });
      } else {
        const retries = this.queue.numRequeues(key);
        this.queue.addRateLimited(key);
        log.warn('reconcile failed; retrying with backoff', {
          error: errorMessage(error),
          retries,
        });
      }
    } finally {
      this.queue.done(key);
    }
  }
}
