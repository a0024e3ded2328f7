import type { KubeClient } from './client.js';
import { isNotFound } from './errors.js';
import { errorMessage, silentLogger, type Logger } from '../observability/logger.js';
import { rfc3339 } from './objects.js';
import { TokenBucket } from './rate-limit.js';
import { Events, keyOf, type KubeObject } from './resource.js';
import { systemClock, type Clock } from '../util/clock.js';

export type EventType = 'Normal' | 'Warning';

/** Records Events about objects; never blocks and never throws (events are best effort). */
export interface EventRecorder {
  event(obj: KubeObject, type: EventType, reason: string, message: string): void;
}

/** A core/v1 Event as this recorder writes it. */
export interface CoreEvent extends KubeObject {
  involvedObject: {
    apiVersion?: string;
    kind?: string;
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
  };
  reason: string;
  message: string;
  type: EventType;
  count: number;
  firstTimestamp: string;
  lastTimestamp: string;
  source: { component: string; host?: string };
  reportingComponent: string;
  reportingInstance: string;
}

export interface KubeEventRecorderOptions {
  client: KubeClient;
  /** `source.component` / `reportingComponent`, e.g. `snapback-snapshot-controller`. */
  component: string;
  /** `source.host` / `reportingInstance`; the pod or host name. */
  host?: string;
  clock?: Clock;
  logger?: Logger;
  /** Distinct messages with the same reason for one object before they are combined. */
  similarEventsLimit?: number;
  /** Window in which similar events count towards the limit. */
  similarEventsWindowMs?: number;
  /** Per-object spam filter: burst, then one event per refill interval. */
  spamBurst?: number;
  spamRefillMs?: number;
  /** Remembered (object, reason, message) series; older ones start a new Event. */
  cacheSize?: number;
}

interface Series {
  namespace: string;
  name: string;
  count: number;
  firstTimestamp: string;
}

const combinedPrefix = '(combined from similar events): ';

/**
 * Writes core/v1 Events the way client-go's recorder does: a repeat of the same (object,
 * type, reason, message) bumps `count` and `lastTimestamp` on the existing Event instead of
 * creating another; after `similarEventsLimit` different messages with the same reason within
 * the window, further ones are combined into one Event; a per-object token bucket drops floods.
 * Writes run in the background, in order per series; `flush()` waits for them.
 */
export class KubeEventRecorder implements EventRecorder {
  private readonly client: KubeClient;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly options: KubeEventRecorderOptions;
  private readonly series = new Map<string, Series>();
  private readonly similar = new Map<string, { messages: Set<string>; since: number }>();
  private readonly spamFilters = new Map<string, TokenBucket>();
  private readonly chains = new Map<string, Promise<void>>();

  constructor(options: KubeEventRecorderOptions) {
    this.options = options;
    this.client = options.client;
    this.clock = options.clock ?? systemClock;
    this.logger = (options.logger ?? silentLogger()).child({ recorder: options.component });
  }

  event(obj: KubeObject, type: EventType, reason: string, message: string): void {
    const objectId = `${obj.kind}/${obj.metadata?.uid ?? keyOf(obj)}`;
    if (!this.spamFilter(objectId).tryTake()) {
      this.logger.debug('event dropped by the spam filter', { reason, object: keyOf(obj) });
      return;
    }
    const combined = this.tooManySimilar(objectId, type, reason, message);
    const finalMessage = combined ? combinedPrefix + message : message;
    // combined events share one series whatever their message, as client-go's aggregator does
    const seriesKey = JSON.stringify([objectId, type, reason, combined ? combinedPrefix : message]);
    const previous = this.chains.get(seriesKey) ?? Promise.resolve();
    const at = this.clock.now();
    const next = previous.then(() => this.write(seriesKey, obj, type, reason, finalMessage, at));
    this.chains.set(seriesKey, next);
    void next.then(() => {
      if (this.chains.get(seriesKey) === next) this.chains.delete(seriesKey);
    });
  }

  /** Resolves once every event recorded so far has been written (or has failed). */
  async flush(): Promise<void> {
    while (this.chains.size > 0) await Promise.all([...this.chains.values()]);
  }

  private spamFilter(objectId: string): TokenBucket {
    let bucket = this.spamFilters.get(objectId);
    if (!bucket) {
      const refillMs = this.options.spamRefillMs ?? 300_000;
      bucket = new TokenBucket(1000 / refillMs, this.options.spamBurst ?? 25, () =>
        this.clock.now().getTime(),
      );
      this.spamFilters.set(objectId, bucket);
      this.trim(this.spamFilters);
    }
    return bucket;
  }

  private tooManySimilar(
    objectId: string,
    type: EventType,
    reason: string,
    message: string,
  ): boolean {
    const key = JSON.stringify([objectId, type, reason]);
    const now = this.clock.now().getTime();
    const windowMs = this.options.similarEventsWindowMs ?? 600_000;
    let record = this.similar.get(key);
    if (!record || now - record.since > windowMs) {
      record = { messages: new Set(), since: now };
      this.similar.set(key, record);
      this.trim(this.similar);
    }
    record.messages.add(message);
    return record.messages.size > (this.options.similarEventsLimit ?? 10);
  }

  private async write(
    seriesKey: string,
    obj: KubeObject,
    type: EventType,
    reason: string,
    message: string,
    at: Date,
  ): Promise<void> {
    const now = rfc3339(at);
    const existing = this.series.get(seriesKey);
    try {
      if (existing) {
        try {
          await this.client.patch(Events, existing.name, existing.namespace, 'merge', {
            count: existing.count + 1,
            lastTimestamp: now,
            message,
          });
          existing.count++;
          return;
        } catch (error) {
          if (!isNotFound(error)) throw error;
          this.series.delete(seriesKey);
        }
      }
      const namespace = obj.metadata?.namespace || 'default';
      const name = `${obj.metadata?.name ?? 'unknown'}.${(BigInt(at.getTime()) * 1_000_000n + BigInt(Math.floor(Math.random() * 1e6))).toString(16)}`;
      const event: CoreEvent = {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name, namespace },
        involvedObject: {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          name: obj.metadata?.name,
          namespace: obj.metadata?.namespace,
          uid: obj.metadata?.uid,
          resourceVersion: obj.metadata?.resourceVersion,
        },
        reason,
        message,
        type,
        count: 1,
        firstTimestamp: now,
        lastTimestamp: now,
        source: { component: this.options.component, host: this.options.host },
        reportingComponent: this.options.component,
        reportingInstance: this.options.host ?? '',
      };
      await this.client.create(Events, event);
      this.series.set(seriesKey, { namespace, name, count: 1, firstTimestamp: now });
      this.trim(this.series);
    } catch (error) {
      this.logger.warn('could not write an event', {
        reason,
        object: keyOf(obj),
        error: errorMessage(error),
      });
    }
  }

  /** Keeps the caches bounded by dropping the oldest entries (Maps iterate in insertion order). */
  private trim(map: Map<string, unknown>): void {
    const limit = this.options.cacheSize ?? 4096;
    while (map.size > limit) map.delete(map.keys().next().value!);
  }
}
