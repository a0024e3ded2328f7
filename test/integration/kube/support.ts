import type { KubeClient, WatchHandle } from '../../../src/kube/client.js';

/**
 * Wraps a client so a test can break what passes through it: end open watches with an error
 * (a dropped connection), answer the next watch with the in-stream 410 Expired status an API
 * server sends for a compacted resourceVersion, or fail every request (a network partition).
 */
export class FaultyClient {
  partitioned = false;
  private expireNextWatch = false;
  private readonly open = new Set<{ handle?: WatchHandle; fail: (error: Error) => void }>();
  watchCalls: Array<{ resourceVersion: string; allowWatchBookmarks?: boolean }> = [];
  listCalls = 0;
  readonly client: KubeClient;

  constructor(inner: KubeClient) {
    this.client = new Proxy(inner, {
      get: (target, property, receiver) => {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (typeof value !== 'function') return value;
        if (property === 'watch') return this.watch(target);
        return (...args: unknown[]) => {
          if (this.partitioned)
            return Promise.reject(new Error('connect ETIMEDOUT (partitioned by the test)'));
          if (property === 'list') this.listCalls++;
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  }

  /** Ends every open watch as a connection reset would. */
  dropWatches(): void {
    for (const entry of [...this.open])
      entry.fail(new Error('read ECONNRESET (dropped by the test)'));
  }

  /** The next watch is answered with 410 Expired instead of reaching the server. */
  expireNext(): void {
    this.expireNextWatch = true;
  }

  get openWatches(): number {
    return this.open.size;
  }

  private watch(target: KubeClient): KubeClient['watch'] {
    return async (type, options, onEvent, onDone) => {
      if (this.partitioned) {
        queueMicrotask(() => onDone(new Error('connect ETIMEDOUT (partitioned by the test)')));
        return { stop: () => undefined };
      }
      this.watchCalls.push({
        resourceVersion: options.resourceVersion,
        allowWatchBookmarks: options.allowWatchBookmarks,
      });
      if (this.expireNextWatch) {
        this.expireNextWatch = false;
        queueMicrotask(() => {
          onEvent({
            type: 'ERROR',
            object: {
              kind: 'Status',
              code: 410,
              reason: 'Expired',
              message: `too old resource version: ${options.resourceVersion}`,
            } as never,
          });
          onDone();
        });
        return { stop: () => undefined };
      }
      const effective = options;
      let finished = false;
      const entry: { handle?: WatchHandle; fail: (error: Error) => void } = {
        fail: (error) => {
          if (finished) return;
          finished = true;
          this.open.delete(entry);
          entry.handle?.stop();
          onDone(error);
        },
      };
      this.open.add(entry);
      entry.handle = await target.watch(type, effective, onEvent, (error) => {
        if (finished) return;
        finished = true;
        this.open.delete(entry);
        onDone(error);
      });
      return { stop: () => entry.handle?.stop() };
    };
  }
}
