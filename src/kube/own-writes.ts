import type { KubeClient, PatchOptions } from './client.js';
import { isNotFound } from './errors.js';
import type { FreshView } from './fresh-view.js';
import { addFinalizer, createIfAbsent, removeFinalizer } from './objects.js';
import type { KubeObject, ResourceType } from './resource.js';

/**
 * The writes of one kind whose answers a FreshView remembers, so the next reconcile reads
 * them even before the watch brings them (see "Own writes first" in docs/architecture.md).
 */
export class OwnWrites<T extends KubeObject> {
  constructor(
    private readonly client: KubeClient,
    private readonly resource: ResourceType,
    readonly view: FreshView<T>,
  ) {}

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
