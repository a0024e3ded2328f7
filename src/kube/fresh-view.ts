import { systemClock, type Clock } from '../util/clock.js';
import type { Informer } from './informer.js';
import { keyOf, type KubeObject } from './resource.js';

/** How long an object we wrote is trusted while the cache has never shown it. */
const UNSEEN_WRITE_TRUST_MS = 30_000;

/**
 * Read-your-own-writes over an informer: keeps the latest version this process wrote of each
 * object, so a reconcile that runs before the watch delivers our own write does not act on the
 * older cached copy (upstream's controllers keep their own stores for the same reason).
 */
export class FreshView<T extends KubeObject> {
  private readonly written = new Map<string, { obj: T; at: number }>();

  constructor(
    private readonly informer: Pick<Informer<T>, 'getByKey' | 'on'>,
    private readonly clock: Clock = systemClock,
  ) {
    informer.on({ delete: (obj) => this.written.delete(keyOf(obj)) });
  }

  /** The newer (by resourceVersion) of the cached object and the one we last wrote. */
  get(key: string): T | undefined {
    const cached = this.informer.getByKey(key);
    const mine = this.written.get(key);
    if (
      mine &&
      (!cached ||
        Number(mine.obj.metadata?.resourceVersion) > Number(cached.metadata?.resourceVersion))
    ) {
      // an object we wrote that the cache never shows may have been deleted since
      if (cached || this.clock.now().getTime() - mine.at < UNSEEN_WRITE_TRUST_MS) return mine.obj;
    }
    this.written.delete(key);
    return cached;
  }

  /** Records what a write returned; returns it. */
  remember(obj: T): T {
    const key = keyOf(obj);
    // the write that removed the last finalizer of a deleted object returns it one last time
    if (obj.metadata?.deletionTimestamp && (obj.metadata.finalizers ?? []).length === 0) {
      this.written.delete(key);
    } else {
      this.written.set(key, { obj, at: this.clock.now().getTime() });
    }
    return obj;
  }

  forget(key: string): void {
    this.written.delete(key);
  }
}
