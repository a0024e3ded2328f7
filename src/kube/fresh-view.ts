import { systemClock, type Clock } from '../util/clock.js';
import type { KubeClient, PatchOptions } from './client.js';
import { isNotFound } from './errors.js';
import type { Informer } from './informer.js';
import { addFinalizer, createIfAbsent, patchStatusDiff, removeFinalizer } from './objects.js';
import { keyOf, type KubeObject, type ResourceType } from './resource.js';

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

/**
 * The writes of one kind whose answers a FreshView remembers, so the next reconcile reads
 * them even before the watch brings them (see "Own writes first" in docs/architecture.md).
 */
export class OwnWrites<T extends KubeObject> {
  constructor(
    protected readonly client: KubeClient,
    protected readonly resource: ResourceType,
    readonly view: FreshView<T>,
  ) {}

  /** The object as the cache or, when newer, our last write has it. */
  get(key: string): T | undefined {
    return this.view.get(key);
  }

  /** A merge patch (of the object, or of its status subresource with `options`). */
  async patch(
    name: string,
    namespace: string | undefined,
    patch: unknown,
    options?: PatchOptions,
  ): Promise<T> {
    return this.view.remember(
      await this.client.patch<T>(this.resource, name, namespace, 'merge', patch, options),
    );
  }

  /** A merge patch of `obj`, addressed by its name and namespace. */
  patchObject(obj: T, patch: unknown, options?: PatchOptions): Promise<T> {
    return this.patch(obj.metadata!.name!, obj.metadata?.namespace, patch, options);
  }

  /** Writes `status` by difference (see patchStatusDiff); no request when nothing differs. */
  async patchStatusDiff(obj: T & { status?: object }, status: object): Promise<T> {
    const written = await patchStatusDiff(this.client, this.resource, obj, status);
    return written === obj ? obj : this.view.remember(written);
  }

  /** Creates `obj`; one that already exists (an earlier attempt's) counts as created. */
  async create(obj: T): Promise<void> {
    const created = await createIfAbsent(this.client, this.resource, obj);
    if (created) this.view.remember(created);
  }

  async addFinalizer(obj: T, finalizer: string): Promise<T> {
    return this.view.remember(await addFinalizer(this.client, this.resource, obj, finalizer));
  }

  async removeFinalizer(obj: T, finalizer: string): Promise<T> {
    return this.view.remember(await removeFinalizer(this.client, this.resource, obj, finalizer));
  }

  /** Sets annotations on an object that may be gone already (then nothing is left to mark). */
  async annotateIfPresent(
    name: string,
    namespace: string | undefined,
    annotations: Record<string, string>,
  ): Promise<void> {
    try {
      await this.patch(name, namespace, { metadata: { annotations } });
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  /** Deletes an object; one already gone counts as deleted. */
  async deleteIfPresent(name: string, namespace?: string): Promise<void> {
    await this.client.delete(this.resource, name, namespace).catch((error: unknown) => {
      if (!isNotFound(error)) throw error;
    });
  }
}
