import type { Logger } from '../../../observability/logger.js';
import { errorMessage } from '../../../observability/logger.js';
import type { EcsApi, EcsSnapshot } from './ecs.js';

/**
 * One poller for every snapshot the driver waits on: each tick sends DescribeSnapshots with
 * up to 100 ids per call, whatever the number of callers. One-off lookups are coalesced over
 * a short window into the same batched calls.
 */

export interface PollerOptions {
  /** Time between ticks while anything is watched. */
  intervalMs: number;
  /** How long a one-off lookup waits for others to share its call. */
  batchWindowMs: number;
  logger: Logger;
  now?: () => number;
}

export const maxIdsPerCall = 100;

interface Lookup {
  resolve(snapshot: EcsSnapshot | undefined): void;
  reject(error: unknown): void;
}

interface Watch {
  until(snapshot: EcsSnapshot | undefined): boolean;
  deadline: number;
  resolve(result: WatchResult): void;
}

export interface WatchResult {
  /** The last state seen; undefined when ECS no longer knows the snapshot (or never answered). */
  snapshot?: EcsSnapshot;
  /** False when the deadline passed first. */
  satisfied: boolean;
}

export class SnapshotPoller {
  private lookups = new Map<string, Lookup[]>();
  private readonly watches = new Map<string, Set<Watch>>();
  private readonly latestSeen = new Map<string, EcsSnapshot | undefined>();
  private timer: NodeJS.Timeout | undefined;
  private timerDueAt = Infinity;
  private flushing = false;
  private flushAgain = false;
  private closed = false;
  private readonly now: () => number;

  constructor(
    private readonly api: EcsApi,
    private readonly options: PollerOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** The snapshot as ECS reports it now (undefined when it does not exist). */
  lookup(id: string): Promise<EcsSnapshot | undefined> {
    if (this.closed) return Promise.reject(new Error('the snapshot poller is closed'));
    return new Promise((resolve, reject) => {
      const waiting = this.lookups.get(id) ?? [];
      waiting.push({ resolve, reject });
      this.lookups.set(id, waiting);
      this.schedule(this.options.batchWindowMs);
    });
  }

  /** Polls the snapshot every tick until `until` holds for it or `timeoutMs` passes. */
  watch(
    id: string,
    until: (snapshot: EcsSnapshot | undefined) => boolean,
    timeoutMs: number,
  ): Promise<WatchResult> {
    if (this.closed) return Promise.reject(new Error('the snapshot poller is closed'));
    return new Promise((resolve) => {
      const set = this.watches.get(id) ?? new Set();
      set.add({ until, deadline: this.now() + timeoutMs, resolve });
      this.watches.set(id, set);
      this.schedule(this.options.intervalMs);
    });
  }

  /**
   * The state seen at the last tick, for a snapshot that is being watched (so the state is
   * at most one interval old); undefined otherwise.
   */
  latest(id: string): { snapshot: EcsSnapshot | undefined } | undefined {
    return this.watches.has(id) && this.latestSeen.has(id)
      ? { snapshot: this.latestSeen.get(id) }
      : undefined;
  }

  /** Ends every watch unsatisfied and rejects pending lookups. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const [id, set] of this.watches) {
      for (const w of set) w.resolve({ snapshot: this.latestSeen.get(id), satisfied: false });
    }
    this.watches.clear();
    for (const waiting of this.lookups.values()) {
      for (const l of waiting) l.reject(new Error('the snapshot poller is closed'));
    }
    this.lookups.clear();
  }

  private schedule(delayMs: number): void {
    if (this.closed) return;
    const due = this.now() + delayMs;
    if (this.timer && this.timerDueAt <= due) return;
    clearTimeout(this.timer);
    this.timerDueAt = due;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerDueAt = Infinity;
      void this.flush();
    }, delayMs);
  }

  private async flush(): Promise<void> {
    if (this.flushing) {
      this.flushAgain = true;
      return;
    }
    this.flushing = true;
    try {
      const lookups = this.lookups;
      this.lookups = new Map();
      const ids = [...new Set([...lookups.keys(), ...this.watches.keys()])];
      const chunks: string[][] = [];
      for (let i = 0; i < ids.length; i += maxIdsPerCall)
        chunks.push(ids.slice(i, i + maxIdsPerCall));
      await Promise.all(chunks.map((chunk) => this.poll(chunk, lookups)));
    } finally {
      this.flushing = false;
    }
    if (this.flushAgain || this.lookups.size > 0) {
      this.flushAgain = false;
      this.schedule(this.lookups.size > 0 ? this.options.batchWindowMs : this.options.intervalMs);
    }
    if (this.watches.size > 0) this.schedule(this.options.intervalMs);
  }

  private async poll(ids: string[], lookups: Map<string, Lookup[]>): Promise<void> {
    let found: Map<string, EcsSnapshot>;
    try {
      const page = await this.api.describeSnapshots({
        snapshotIds: ids,
        maxResults: maxIdsPerCall,
      });
      found = new Map(page.items.map((s) => [s.id, s]));
    } catch (error) {
      for (const id of ids) for (const l of lookups.get(id) ?? []) l.reject(error);
      this.options.logger.warn('polling ECS snapshots failed; will retry', {
        snapshots: ids.length,
        error: errorMessage(error),
      });
      this.expire(ids);
      return;
    }
    for (const id of ids) {
      const snapshot = found.get(id);
      for (const l of lookups.get(id) ?? []) l.resolve(snapshot);
      const set = this.watches.get(id);
      if (!set) continue;
      this.latestSeen.set(id, snapshot);
      for (const w of set) {
        if (w.until(snapshot)) {
          set.delete(w);
          w.resolve({ snapshot, satisfied: true });
        }
      }
      this.forgetIfUnwatched(id);
    }
    this.expire(ids);
  }

  private expire(ids: string[]): void {
    const now = this.now();
    for (const id of ids) {
      const set = this.watches.get(id);
      if (!set) continue;
      for (const w of set) {
        if (now >= w.deadline) {
          set.delete(w);
          w.resolve({ snapshot: this.latestSeen.get(id), satisfied: false });
        }
      }
      this.forgetIfUnwatched(id);
    }
  }

  private forgetIfUnwatched(id: string): void {
    if (this.watches.get(id)?.size === 0) {
      this.watches.delete(id);
      this.latestSeen.delete(id);
    }
  }
}
