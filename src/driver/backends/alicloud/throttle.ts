import type { Logger } from '../../../observability/logger.js';
import type { EcsOutcome } from '../../../observability/metrics.js';
import {
  EcsError,
  ecsActions,
  isThrottling,
  isTransient,
  type EcsAction,
  type EcsApi,
} from './ecs.js';

/**
 * Client-side flow control for ECS: a token bucket per API (ECS throttles per account, region
 * and API), and retries with jittered exponential backoff for transient failures. A throttled
 * reply pauses the whole API's bucket, honouring ECS's retry-after, so concurrent callers wait
 * together instead of each hammering the API. Throttling is never reported as a permanent
 * failure: once the retry budget is spent it surfaces as the transient EcsError it is.
 */

export interface RetryPolicy {
  baseDelayMs: number;
  maxDelayMs: number;
  /** Total time one call may spend waiting between attempts. */
  budgetMs: number;
}

export const defaultRetryPolicy: RetryPolicy = {
  baseDelayMs: 200,
  maxDelayMs: 10_000,
  budgetMs: 30_000,
};

/** Requests per second by API. ECS quotas differ per account; these are conservative. */
export const defaultRateLimits: Record<EcsAction, number> = {
  CreateSnapshot: 10,
  DeleteSnapshot: 10,
  CreateDisk: 10,
  DeleteDisk: 10,
  ResizeDisk: 10,
  DescribeSnapshots: 20,
  DescribeDisks: 20,
  CreateSnapshotGroup: 10,
  DeleteSnapshotGroup: 10,
  DescribeSnapshotGroups: 20,
};

/**
 * The wait before retry number `attempt` (0-based). With a retry-after from ECS: that, plus
 * a little jitter so released callers do not arrive together. Otherwise "equal jitter": half
 * the exponential step, plus a random share of the other half.
 */
export function backoffDelay(
  attempt: number,
  policy: RetryPolicy,
  retryAfterMs: number | undefined,
  random: () => number,
): number {
  if (retryAfterMs !== undefined && retryAfterMs >= 0) {
    return retryAfterMs + Math.floor(random() * (policy.baseDelayMs / 2));
  }
  const step = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return Math.floor(step / 2 + random() * (step / 2));
}

/** Hands out `ratePerSecond` tokens a second, up to `burst` at once, to callers in FIFO order. */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;
  private pausedUntil = 0;
  private readonly waiters: { resolve: () => void; reject: (error: Error) => void }[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number = Math.max(1, ratePerSecond),
    private readonly now: () => number = Date.now,
  ) {
    if (!(ratePerSecond > 0) || !(burst >= 1)) {
      throw new Error(
        `a token bucket needs a positive rate and a burst of at least 1 (got ${ratePerSecond}/s, ${burst})`,
      );
    }
    this.tokens = burst;
    this.updatedAt = now();
  }

  take(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.drain();
    });
  }

  /** No token is handed out before `until` (epoch milliseconds). */
  pauseUntil(until: number): void {
    if (until > this.pausedUntil) this.pausedUntil = until;
    // One probe when the pause ends: tokens saved up before it would let a burst through.
    this.tokens = 1;
  }

  /** Rejects the waiters; the bucket hands out nothing afterwards. */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const waiter of this.waiters.splice(0))
      waiter.reject(new Error('the ECS client is closed'));
  }

  private refill(now: number): void {
    const from = Math.max(this.updatedAt, this.pausedUntil);
    if (now > from)
      this.tokens = Math.min(this.burst, this.tokens + ((now - from) * this.ratePerSecond) / 1000);
    this.updatedAt = Math.max(this.updatedAt, now);
  }

  private drain(): void {
    const now = this.now();
    this.refill(now);
    while (this.waiters.length > 0 && now >= this.pausedUntil && this.tokens >= 1) {
      this.tokens -= 1;
      this.waiters.shift()!.resolve();
    }
    if (this.waiters.length === 0 || this.timer) return;
    const untilToken = Math.ceil(((1 - this.tokens) * 1000) / this.ratePerSecond);
    const wait = Math.max(this.pausedUntil - now, untilToken, 1);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.drain();
    }, wait);
  }
}

export interface RateLimitOptions {
  limits?: Partial<Record<EcsAction, number>>;
  retry?: RetryPolicy;
  logger: Logger;
  random?: () => number;
  now?: () => number;
  /** Told of every attempt's outcome (for the ECS API metrics). */
  onCall?: (action: EcsAction, outcome: EcsOutcome) => void;
}

/** EcsApi with a token bucket per API and retries for transient failures. */
export class RateLimitedEcsApi implements EcsApi {
  private readonly buckets: Record<EcsAction, TokenBucket>;
  private readonly retry: RetryPolicy;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly logger: Logger;
  private readonly onCall: (action: EcsAction, outcome: EcsOutcome) => void;

  constructor(
    private readonly inner: EcsApi,
    options: RateLimitOptions,
  ) {
    this.retry = options.retry ?? defaultRetryPolicy;
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    this.logger = options.logger;
    this.onCall = options.onCall ?? (() => undefined);
    const limits = { ...defaultRateLimits, ...options.limits };
    this.buckets = Object.fromEntries(
      ecsActions.map((action) => [action, new TokenBucket(limits[action], undefined, this.now)]),
    ) as Record<EcsAction, TokenBucket>;
  }

  close(): void {
    for (const bucket of Object.values(this.buckets)) bucket.close();
  }

  private async run<T>(action: EcsAction, call: () => Promise<T>): Promise<T> {
    const started = this.now();
    const bucket = this.buckets[action];
    for (let attempt = 0; ; attempt++) {
      await bucket.take();
      try {
        const result = await call();
        this.onCall(action, 'success');
        return result;
      } catch (error) {
        this.onCall(
          action,
          error instanceof EcsError && isThrottling(error) ? 'throttled' : 'error',
        );
        if (!(error instanceof EcsError) || !isTransient(error)) throw error;
        const delay = backoffDelay(attempt, this.retry, error.retryAfterMs, this.random);
        if (isThrottling(error)) bucket.pauseUntil(this.now() + delay);
        const spent = this.now() - started;
        if (spent + delay > this.retry.budgetMs) {
          this.logger.warn('ECS call still failing, giving up for now', {
            action,
            code: error.code,
            requestId: error.details.requestId,
            attempts: attempt + 1,
            spentMs: spent,
          });
          throw error;
        }
        this.logger.debug('ECS call failed, retrying', {
          action,
          code: error.code,
          requestId: error.details.requestId,
          attempt: attempt + 1,
          delayMs: delay,
        });
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  createSnapshot(...args: Parameters<EcsApi['createSnapshot']>) {
    return this.run('CreateSnapshot', () => this.inner.createSnapshot(...args));
  }

  describeSnapshots(...args: Parameters<EcsApi['describeSnapshots']>) {
    return this.run('DescribeSnapshots', () => this.inner.describeSnapshots(...args));
  }

  deleteSnapshot(...args: Parameters<EcsApi['deleteSnapshot']>) {
    return this.run('DeleteSnapshot', () => this.inner.deleteSnapshot(...args));
  }

  createDisk(...args: Parameters<EcsApi['createDisk']>) {
    return this.run('CreateDisk', () => this.inner.createDisk(...args));
  }

  describeDisks(...args: Parameters<EcsApi['describeDisks']>) {
    return this.run('DescribeDisks', () => this.inner.describeDisks(...args));
  }

  deleteDisk(...args: Parameters<EcsApi['deleteDisk']>) {
    return this.run('DeleteDisk', () => this.inner.deleteDisk(...args));
  }

  resizeDisk(...args: Parameters<EcsApi['resizeDisk']>) {
    return this.run('ResizeDisk', () => this.inner.resizeDisk(...args));
  }

  createSnapshotGroup(...args: Parameters<EcsApi['createSnapshotGroup']>) {
    return this.run('CreateSnapshotGroup', () => this.inner.createSnapshotGroup(...args));
  }

  describeSnapshotGroups(...args: Parameters<EcsApi['describeSnapshotGroups']>) {
    return this.run('DescribeSnapshotGroups', () => this.inner.describeSnapshotGroups(...args));
  }

  deleteSnapshotGroup(...args: Parameters<EcsApi['deleteSnapshotGroup']>) {
    return this.run('DeleteSnapshotGroup', () => this.inner.deleteSnapshotGroup(...args));
  }
}
