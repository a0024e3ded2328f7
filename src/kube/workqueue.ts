import { defaultControllerRateLimiter, type RateLimiter } from './rate-limit.js';

/**
 * A work queue with client-go's semantics:
 * - an item queued twice before it is processed is processed once (dedupe);
 * - an item is handed to at most one worker at a time;
 * - an item added while a worker holds it is handed out again after `done()`;
 * - `addRateLimited` delays by the rate limiter (per-item exponential backoff and an overall
 *   token bucket by default), `forget` resets the item's backoff;
 * - `addAfter` keeps only the earliest pending time per item.
 */
export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly waiting = new Map<string, { readyAt: number; timer: NodeJS.Timeout }>();
  private readonly getters: Array<(item: string | undefined) => void> = [];
  private shuttingDown = false;

  constructor(readonly rateLimiter: RateLimiter = defaultControllerRateLimiter()) {}

  add(item: string): void {
    if (this.shuttingDown || this.dirty.has(item)) return;
    this.dirty.add(item);
    if (this.processing.has(item)) return;
    this.push(item);
  }

  /** Adds the item once `delayMs` has passed, unless it is already due sooner. */
  addAfter(item: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(item);
      return;
    }
    const readyAt = Date.now() + delayMs;
    const pending = this.waiting.get(item);
    if (pending) {
      if (pending.readyAt <= readyAt) return;
      clearTimeout(pending.timer);
    }
    const timer = setTimeout(() => {
      this.waiting.delete(item);
      this.add(item);
    }, delayMs);
    timer.unref?.();
    this.waiting.set(item, { readyAt, timer });
  }

  /** Adds the item after the rate limiter's delay (the retry path after a failure). */
  addRateLimited(item: string): void {
    this.addAfter(item, this.rateLimiter.when(item));
  }

  /** Clears the item's failure history; call after it was processed successfully. */
  forget(item: string): void {
    this.rateLimiter.forget(item);
  }

  numRequeues(item: string): number {
    return this.rateLimiter.numRequeues(item);
  }

  /**
   * The next item to process, waiting for one if none is ready; `undefined` once the queue is
   * shutting down. The caller must call `done(item)` when finished with it.
   */
  get(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const item = this.queue.shift();
    if (item !== undefined) return Promise.resolve(this.take(item));
    return new Promise((resolve) => this.getters.push(resolve));
  }

  done(item: string): void {
    this.processing.delete(item);
    if (this.dirty.has(item) && !this.shuttingDown) this.push(item);
  }

  /** Items ready to be handed out (not those held by workers or waiting for a delay). */
  get length(): number {
    return this.queue.length;
  }

  /** Items waiting for an `addAfter` / backoff delay. */
  get delayedLength(): number {
    return this.waiting.size;
  }

  get processingLength(): number {
    return this.processing.size;
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /** Stops handing out items: pending `get()` calls resolve to `undefined`, timers are dropped. */
  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.waiting.values()) clearTimeout(timer);
    this.waiting.clear();
    for (const resolve of this.getters.splice(0)) resolve(undefined);
  }

  private push(item: string): void {
    const getter = this.getters.shift();
    if (getter) {
      getter(this.take(item));
      return;
    }
    this.queue.push(item);
  }

  private take(item: string): string {
    this.processing.add(item);
    this.dirty.delete(item);
    return item;
  }
}
