/**
 * A token bucket: `qps` tokens per second, at most `burst` saved up. `reserve()` takes a
 * token now and says how long the caller must wait before using it, so waits queue up in
 * order of reservation (as golang.org/x/time/rate's Reserve does).
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly qps: number,
    readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!(qps > 0) || !(burst >= 1))
      throw new Error(`invalid token bucket: qps ${qps}, burst ${burst}`);
    this.tokens = burst;
    this.last = now();
  }

  /** Milliseconds until the reserved token may be used (0 = at once). */
  reserve(): number {
    this.refill();
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.qps) * 1000);
  }

  /** Takes a token if one is available now; never goes into debt. */
  tryTake(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.qps);
    this.last = now;
  }
}

/** How long to hold an item back before it is retried (client-go's workqueue.RateLimiter). */
export interface RateLimiter {
  when(item: string): number;
  /** Resets the item's failure history (after a success). */
  forget(item: string): void;
  numRequeues(item: string): number;
}

/** Per-item exponential backoff: `baseMs * 2^failures`, capped at `maxMs`. */
export class ItemExponentialRateLimiter implements RateLimiter {
  private readonly failures = new Map<string, number>();

  constructor(
    readonly baseMs: number,
    readonly maxMs: number,
  ) {}

  when(item: string): number {
    const failures = this.failures.get(item) ?? 0;
    this.failures.set(item, failures + 1);
    // 2^failures overflows to Infinity long before it matters; the cap applies either way
    return Math.min(this.maxMs, this.baseMs * 2 ** failures);
  }

  forget(item: string): void {
    this.failures.delete(item);
  }

  numRequeues(item: string): number {
    return this.failures.get(item) ?? 0;
  }
}

/** An overall rate limit shared by all items; no per-item memory. */
export class BucketRateLimiter implements RateLimiter {
  private readonly bucket: TokenBucket;

  constructor(qps: number, burst: number, now?: () => number) {
    this.bucket = new TokenBucket(qps, burst, now);
  }

  when(): number {
    return this.bucket.reserve();
  }

  forget(): void {}

  numRequeues(): number {
    return 0;
  }
}

/** The longest wait any of the limiters asks for. */
export class MaxOfRateLimiter implements RateLimiter {
  private readonly limiters: RateLimiter[];

  constructor(...limiters: RateLimiter[]) {
    this.limiters = limiters;
  }

  when(item: string): number {
    return Math.max(0, ...this.limiters.map((limiter) => limiter.when(item)));
  }

  forget(item: string): void {
    for (const limiter of this.limiters) limiter.forget(item);
  }

  numRequeues(item: string): number {
    return Math.max(0, ...this.limiters.map((limiter) => limiter.numRequeues(item)));
  }
}

export interface ControllerRateLimiterOptions {
  /** First retry delay; doubles per consecutive failure of the same key. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Overall retry rate across all keys. */
  qps?: number;
  burst?: number;
}

/**
 * client-go's default controller rate limiter: per-key 5 ms .. 1000 s, overall 10 qps with a
 * burst of 100. The snapshot controllers pass upstream's 1 s .. 5 min instead.
 */
export function defaultControllerRateLimiter(
  options: ControllerRateLimiterOptions = {},
): RateLimiter {
  return new MaxOfRateLimiter(
    new ItemExponentialRateLimiter(options.baseDelayMs ?? 5, options.maxDelayMs ?? 1_000_000),
    new BucketRateLimiter(options.qps ?? 10, options.burst ?? 100),
  );
}
