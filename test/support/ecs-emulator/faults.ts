import type { EcsApiError } from './errors.js';
import { internalError, serviceUnavailable, throttled } from './errors.js';

/**
 * Per-API rate limits and the faults tests inject: throttling bursts, 5xx responses and
 * latency. A fault can strike before the request is processed (nothing happened) or after
 * (the change was made but the client never learns it), the case ClientTokens exist for.
 */

export type Phase = 'before' | 'after';

export interface RateLimitSpec {
  perSecond: number;
  /** Requests allowed at once after an idle period; defaults to perSecond. */
  burst?: number;
  /** Whether throttled replies carry `x-acs-retry-after` (ECS does not always send it). */
  sendRetryAfter?: boolean;
}

export interface ServerErrorSpec {
  /** Probability from 0 to 1 that a request gets a 5xx. */
  rate: number;
  /** Where the error strikes; 'either' picks at random per fault. */
  phase?: Phase | 'either';
  /** Limit to these actions; all when absent. */
  actions?: string[];
  /** Seed for the pseudo-random choices, so a failing run can be replayed. */
  seed?: number;
}

export interface LatencySpec {
  ms: number;
  phase?: Phase;
  actions?: string[];
  /** How many requests to delay; all while set when absent. */
  count?: number;
}

export interface ThrottleWindowSpec {
  /** An action name, or '*' for every action. */
  action: string;
  /** Every request in the next `ms` milliseconds is throttled, as when a quota window is spent. */
  ms: number;
  /** Whether replies carry the time left in the window as `x-acs-retry-after`. */
  sendRetryAfter?: boolean;
}

export interface ThrottleBurstSpec {
  /** An action name, or '*' for every action. */
  action: string;
  count: number;
  retryAfterMs?: number;
}

interface Bucket {
  spec: Required<RateLimitSpec>;
  tokens: number;
  updatedAt: number;
}

/** mulberry32: small, seedable, good enough to spread faults. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FaultDecision {
  error?: EcsApiError;
  delayMs: number;
}

export class Faults {
  private readonly buckets = new Map<string, Bucket>();
  private bursts: ThrottleBurstSpec[] = [];
  private windows: (ThrottleWindowSpec & { until: number })[] = [];
  private serverErrors?: ServerErrorSpec & { random: () => number };
  private latency?: LatencySpec;
  /** Faults injected so far, by kind, for tests that check the faults really happened. */
  readonly injected = {
    throttled: 0,
    rateLimited: 0,
    serverErrorsBefore: 0,
    serverErrorsAfter: 0,
    delayed: 0,
  };

  constructor(private readonly now: () => number) {}

  setRateLimit(action: string, spec: RateLimitSpec): void {
    const full: Required<RateLimitSpec> = {
      perSecond: spec.perSecond,
      burst: spec.burst ?? spec.perSecond,
      sendRetryAfter: spec.sendRetryAfter ?? true,
    };
    this.buckets.set(action, { spec: full, tokens: full.burst, updatedAt: this.now() });
  }

  clearRateLimit(action: string): void {
    this.buckets.delete(action);
  }

  /** The next `count` requests for the action are throttled whatever the rate limits say. */
  throttleNext(spec: ThrottleBurstSpec): void {
    this.bursts.push({ ...spec });
  }

  /** Every request for the action is throttled for a while. */
  throttleFor(spec: ThrottleWindowSpec): void {
    this.windows.push({ ...spec, until: this.now() + spec.ms });
  }

  failRandomly(spec: ServerErrorSpec): void {
    this.serverErrors = { ...spec, random: seededRandom(spec.seed ?? 1) };
  }

  delay(spec: LatencySpec): void {
    this.latency = { ...spec };
  }

  clear(): void {
    this.buckets.clear();
    this.bursts = [];
    this.windows = [];
    this.serverErrors = undefined;
    this.latency = undefined;
  }

  /** Rate limits and throttling bursts, checked as a request arrives. */
  admit(action: string): EcsApiError | undefined {
    const now = this.now();
    this.windows = this.windows.filter((w) => w.until > now);
    const window = this.windows.find((w) => w.action === action || w.action === '*');
    if (window) {
      this.injected.throttled += 1;
      return throttled(window.sendRetryAfter ? window.until - now : undefined);
    }
    const burst = this.bursts.find((b) => b.action === action || b.action === '*');
    if (burst) {
      burst.count -= 1;
      if (burst.count <= 0) this.bursts = this.bursts.filter((b) => b !== burst);
      this.injected.throttled += 1;
      return throttled(burst.retryAfterMs);
    }
    const bucket = this.buckets.get(action);
    if (!bucket) return undefined;
    const { perSecond, burst: capacity, sendRetryAfter } = bucket.spec;
    bucket.tokens = Math.min(
      capacity,
      bucket.tokens + ((now - bucket.updatedAt) * perSecond) / 1000,
    );
    bucket.updatedAt = now;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return undefined;
    }
    this.injected.rateLimited += 1;
    const waitMs = Math.ceil(((1 - bucket.tokens) * 1000) / perSecond);
    return throttled(sendRetryAfter ? waitMs : undefined);
  }

  decide(action: string, phase: Phase): FaultDecision {
    const decision: FaultDecision = { delayMs: 0 };
    const latency = this.latency;
    if (
      latency &&
      (latency.phase ?? 'before') === phase &&
      (!latency.actions || latency.actions.includes(action))
    ) {
      decision.delayMs = latency.ms;
      this.injected.delayed += 1;
      if (latency.count !== undefined && --latency.count <= 0) this.latency = undefined;
    }
    const errors = this.serverErrors;
    if (errors && (!errors.actions || errors.actions.includes(action))) {
      const wanted = errors.phase ?? 'either';
      if (
        errors.random() < errors.rate / (wanted === 'either' ? 2 : 1) &&
        (wanted === 'either' || wanted === phase)
      ) {
        decision.error = errors.random() < 0.5 ? internalError() : serviceUnavailable();
        if (phase === 'before') this.injected.serverErrorsBefore += 1;
        else this.injected.serverErrorsAfter += 1;
      }
    }
    return decision;
  }
}
