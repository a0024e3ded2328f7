import type { KubeClient, WatchEvent, WatchHandle } from './client.js';
import { ApiError, isGone } from './errors.js';
import { WatchIdleError } from './http-client.js';
import { errorMessage, silentLogger, type Logger } from '../observability/logger.js';
import { keyOf, makeKey, type KubeObject, type ObjectMeta, type ResourceType } from './resource.js';
import {
  fieldSelectorMatches,
  labelSelectorMatches,
  parseLabelSelector,
  type LabelSelector,
} from './selectors.js';
import { abortableSleep } from '../util/sleep.js';

/** Index values of an object, e.g. the snapshot names a PVC restores from. */
export type IndexFunc<T> = (obj: T) => string[];

export interface InformerHandlers<T> {
  add?(obj: T): void;
  /** Also called on periodic resyncs, with the same object twice. */
  update?(oldObj: T, newObj: T): void;
  /** The last state the informer knew of the object. */
  delete?(obj: T): void;
}

export interface InformerOptions<T> {
  client: KubeClient;
  type: ResourceType;
  /** Watch one namespace only; all namespaces when unset. */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  indexers?: Record<string, IndexFunc<T>>;
  /** Replays every cached object to `update` handlers this often (0 = never). */
  resyncPeriodMs?: number;
  /** Jittered exponential backoff between failed list/watch attempts. */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /**
   * Applied to every listed or watched object before it is cached, indexed and handed to the
   * handlers (client-go's SetTransform): what the cache keeps of it. Unset: the object as
   * received.
   */
  transform?: (obj: T) => T;
  logger?: Logger;
}

/** Written by `kubectl apply`: the whole applied manifest again, read only by kubectl. */
export const LAST_APPLIED_ANNOTATION = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * The object without what no controller here reads and what makes up much of each cached
 * object: `metadata.managedFields` (as controller-runtime's TransformStripManagedFields) and
 * kubectl's last-applied-configuration annotation. Safe because nothing writes a cached
 * object back whole: updates are patches, or start from a fresh GET (createOrPatch), and an
 * update without managedFields keeps the server's. A new object is returned only when
 * something is dropped; the input is not modified.
 */
export function stripUnreadFields<T extends KubeObject>(obj: T): T {
  const metadata = obj.metadata as (ObjectMeta & { managedFields?: unknown }) | undefined;
  if (!metadata) return obj;
  const annotations = metadata.annotations;
  const hasLastApplied = annotations !== undefined && LAST_APPLIED_ANNOTATION in annotations;
  if (metadata.managedFields === undefined && !hasLastApplied) return obj;
  // copied key by key rather than with `delete`, which would leave slower, larger objects
  const kept: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(metadata)) {
    if (key === 'managedFields') continue;
    if (key === 'annotations' && hasLastApplied) {
      const others = withoutKey(annotations, LAST_APPLIED_ANNOTATION);
      if (Object.keys(others).length > 0) kept.annotations = others;
      continue;
    }
    kept[key] = value;
  }
  return { ...obj, metadata: kept as ObjectMeta };
}

function withoutKey(record: Record<string, string>, omitted: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(record)) if (key !== omitted) result[key] = value;
  return result;
}

export interface CacheListOptions {
  namespace?: string;
  /** A LabelSelector or its query-string form. */
  labelSelector?: LabelSelector | string;
  fieldSelector?: string;
}

/**
 * A list+watch cache of one resource type, as client-go's shared informer: lists (in pages),
 * then watches from the list's resourceVersion with bookmarks; relists when the server says
 * the version is gone (410); restarts after any other error with jittered exponential backoff.
 * A relist reconciles the cache, emitting add/update/delete for what changed in between.
 *
 * Cached objects are shared: never mutate them.
 */
export class Informer<T extends KubeObject> {
  readonly type: ResourceType;
  private readonly client: KubeClient;
  private readonly options: InformerOptions<T>;
  private readonly transform: (obj: T) => T;
  private readonly logger: Logger;
  private readonly objects = new Map<string, T>();
  private readonly indexers = new Map<string, IndexFunc<T>>();
  /** index name -> value -> keys */
  private readonly indices = new Map<string, Map<string, Set<string>>>();
  private readonly handlers = new Set<InformerHandlers<T>>();
  private readonly syncWaiters: Array<() => void> = [];
  private resourceVersion = '';
  private synced = false;
  private running = false;
  private stopController = new AbortController();
  private loop: Promise<void> | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private watchHandle: WatchHandle | undefined;

  constructor(options: InformerOptions<T>) {
    this.options = options;
    this.type = options.type;
    this.client = options.client;
    this.transform = options.transform ?? ((obj) => obj);
    this.logger = (options.logger ?? silentLogger()).child({ informer: options.type.plural });
    for (const [name, indexFunc] of Object.entries(options.indexers ?? {})) {
      this.addIndexer(name, indexFunc);
    }
  }

  /**
   * Registers handlers; objects already cached are replayed to `add` at once, as client-go
   * does for late handlers. Returns a function that unregisters them.
   */
  on(handlers: InformerHandlers<T>): () => void {
    this.handlers.add(handlers);
    for (const obj of this.objects.values()) this.call(handlers, 'add', obj);
    return () => this.handlers.delete(handlers);
  }

  /** Adds an index; may be called at any time (it indexes what is already cached). */
  addIndexer(name: string, indexFunc: IndexFunc<T>): void {
    if (this.indexers.has(name))
      throw new Error(`index "${name}" already exists on ${this.type.plural}`);
    this.indexers.set(name, indexFunc);
    this.indices.set(name, new Map());
    for (const [key, obj] of this.objects) this.indexOne(name, indexFunc, key, obj);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopController = new AbortController();
    this.loop = this.run(this.stopController.signal);
    if (this.options.resyncPeriodMs) {
      this.resyncTimer = setInterval(() => this.resync(), this.options.resyncPeriodMs);
      this.resyncTimer.unref();
    }
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearInterval(this.resyncTimer);
    this.stopController.abort();
    this.watchHandle?.stop();
    await this.loop;
  }

  /** True once the first list has been applied to the cache. */
  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once the first list has been applied; rejects if `signal` aborts first. */
  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(new Error(`stopped before ${this.type.plural} synced`));
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.syncWaiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  /** The resourceVersion of the last list, watch event or bookmark seen. */
  get lastSyncResourceVersion(): string {
    return this.resourceVersion;
  }

  get(name: string, namespace?: string): T | undefined {
    return this.objects.get(makeKey(name, this.type.namespaced ? namespace : undefined));
  }

  getByKey(key: string): T | undefined {
    return this.objects.get(key);
  }

  list(options: CacheListOptions = {}): T[] {
    const labelSelector =
      typeof options.labelSelector === 'string'
        ? parseLabelSelector(options.labelSelector)
        : options.labelSelector;
    const result: T[] = [];
    for (const obj of this.objects.values()) {
      if (options.namespace !== undefined && obj.metadata?.namespace !== options.namespace)
        continue;
      if (labelSelector && !labelSelectorMatches(labelSelector, obj.metadata?.labels)) continue;
      if (options.fieldSelector && !fieldSelectorMatches(options.fieldSelector, obj)) continue;
      result.push(obj);
    }
    return result;
  }

  keys(): string[] {
    return [...this.objects.keys()];
  }

  hasIndex(name: string): boolean {
    return this.indexers.has(name);
  }

  byIndex(indexName: string, value: string): T[] {
    const index = this.indices.get(indexName);
    if (!index) throw new Error(`no index "${indexName}" on ${this.type.plural}`);
    return [...(index.get(value) ?? [])].map((key) => this.objects.get(key)!);
  }

  private async run(signal: AbortSignal): Promise<void> {
    const initial = this.options.backoffInitialMs ?? 800;
    const max = this.options.backoffMaxMs ?? 30_000;
    let backoff = initial;
    while (!signal.aborted) {
      try {
        if (!this.resourceVersion) await this.relist();
        if (signal.aborted) break;
        const progressed = await this.watchOnce(signal);
        if (progressed) {
          backoff = initial;
        } else {
          // a stream that ends before delivering anything must not turn into a request loop
          await abortableSleep(jitter(backoff), signal);
          backoff = Math.min(max, backoff * 2);
        }
      } catch (error) {
        if (signal.aborted) break;
        if (error instanceof WatchIdleError) {
          this.logger.debug('watch idle; resuming', { resourceVersion: this.resourceVersion });
          continue;
        }
        if (isGone(error)) {
          this.logger.info('resourceVersion expired; relisting', {
            resourceVersion: this.resourceVersion,
          });
          this.resourceVersion = '';
          continue;
        }
        const delay = jitter(backoff);
        this.logger.warn('list/watch failed; retrying', {
          error: errorMessage(error),
          retryInMs: delay,
        });
        backoff = Math.min(max, backoff * 2);
        await abortableSleep(delay, signal);
      }
    }
  }

  private async relist(): Promise<void> {
    const list = await this.client.list<T>(this.type, {
      namespace: this.options.namespace,
      labelSelector: this.options.labelSelector,
      fieldSelector: this.options.fieldSelector,
    });
    const seen = new Set<string>();
    for (const item of list.items) {
      const obj = this.transform(item);
      seen.add(keyOf(obj));
      this.upsert(obj);
    }
    for (const [key, obj] of [...this.objects]) {
      if (!seen.has(key)) this.remove(key, obj);
    }
    this.resourceVersion = list.resourceVersion;
    if (!this.synced) {
      this.synced = true;
      for (const resolve of this.syncWaiters.splice(0)) resolve();
    }
  }

  /** Resolves true if the watch delivered anything, false if it ended at once; rejects on errors. */
  private watchOnce(signal: AbortSignal): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      let progressed = false;
      let failure: unknown;
      const onEvent = (event: WatchEvent<T>) => {
        if (failure !== undefined) return;
        if (event.type === 'ERROR') {
          const status = event.object as unknown as {
            code?: number;
            reason?: string;
            message?: string;
          };
          failure = new ApiError(
            status.code ?? 500,
            status.reason ?? 'Unknown',
            `watch ${this.type.plural}: ${status.message}`,
          );
          this.watchHandle?.stop();
          return;
        }
        progressed = true;
        if (event.type === 'ADDED' || event.type === 'MODIFIED')
          this.upsert(this.transform(event.object));
        else if (event.type === 'DELETED')
          this.remove(keyOf(event.object), this.transform(event.object));
        const version = event.object.metadata?.resourceVersion;
        if (version) this.resourceVersion = version;
      };
      const onDone = (error?: unknown) => {
        this.watchHandle = undefined;
        const cause = failure ?? error;
        if (cause !== undefined && !signal.aborted) reject(cause);
        else resolve(progressed);
      };
      this.client
        .watch<T>(
          this.type,
          {
            namespace: this.options.namespace,
            resourceVersion: this.resourceVersion,
            labelSelector: this.options.labelSelector,
            fieldSelector: this.options.fieldSelector,
            allowWatchBookmarks: true,
            // spread reconnects of many informers, as client-go's reflector does
            timeoutSeconds: Math.floor(300 + Math.random() * 300),
          },
          onEvent,
          onDone,
        )
        .then((handle) => {
          this.watchHandle = handle;
          if (signal.aborted) handle.stop();
        }, reject);
    });
  }

  private upsert(obj: T): void {
    const key = keyOf(obj);
    const old = this.objects.get(key);
    if (old && old.metadata?.resourceVersion === obj.metadata?.resourceVersion) return;
    if (old) this.unindex(key, old);
    this.objects.set(key, obj);
    for (const [name, indexFunc] of this.indexers) this.indexOne(name, indexFunc, key, obj);
    for (const handlers of [...this.handlers]) {
      if (old) this.call(handlers, 'update', old, obj);
      else this.call(handlers, 'add', obj);
    }
  }

  private remove(key: string, lastKnown: T): void {
    const old = this.objects.get(key);
    if (!old) return;
    this.unindex(key, old);
    this.objects.delete(key);
    for (const handlers of [...this.handlers])
      this.call(handlers, 'delete', lastKnown.metadata ? lastKnown : old);
  }

  private resync(): void {
    for (const obj of this.objects.values()) {
      for (const handlers of [...this.handlers]) this.call(handlers, 'update', obj, obj);
    }
  }

  private indexOne(name: string, indexFunc: IndexFunc<T>, key: string, obj: T): void {
    const index = this.indices.get(name)!;
    let values: string[];
    try {
      values = indexFunc(obj);
    } catch (error) {
      this.logger.error('index function failed', { index: name, key, error: errorMessage(error) });
      return;
    }
    for (const value of values) {
      let keys = index.get(value);
      if (!keys) index.set(value, (keys = new Set()));
      keys.add(key);
    }
  }

  private unindex(key: string, obj: T): void {
    for (const [name, indexFunc] of this.indexers) {
      const index = this.indices.get(name)!;
      let values: string[];
      try {
        values = indexFunc(obj);
      } catch {
        values = [...index.keys()];
      }
      for (const value of values) {
        const keys = index.get(value);
        keys?.delete(key);
        if (keys?.size === 0) index.delete(value);
      }
    }
  }

  private call(
    handlers: InformerHandlers<T>,
    kind: 'add' | 'update' | 'delete',
    obj: T,
    newObj?: T,
  ): void {
    try {
      if (kind === 'add') handlers.add?.(obj);
      else if (kind === 'update') handlers.update?.(obj, newObj!);
      else handlers.delete?.(obj);
    } catch (error) {
      this.logger.error('informer handler failed', {
        event: kind,
        key: keyOf(obj),
        error: errorMessage(error),
      });
    }
  }
}

/** Uniform in [delay, 2 * delay), like client-go's wait.Jitter with factor 1. */
function jitter(delay: number): number {
  return Math.round(delay * (1 + Math.random()));
}
