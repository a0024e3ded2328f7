import type { KubeObject, ResourceType } from './resource.js';

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Page size; the client follows `continue` tokens itself unless `continue` is given. */
  limit?: number;
  continue?: string;
  resourceVersion?: string;
}

export interface ObjectList<T> {
  items: T[];
  resourceVersion: string;
  /** Set when a single page was asked for (`limit`) and more remain. */
  continue?: string;
}

export type PatchType = 'merge' | 'json' | 'apply';

/** One RFC 6902 operation. */
export interface JsonPatchOperation {
  op: 'add' | 'remove' | 'replace' | 'test' | 'move' | 'copy';
  path: string;
  value?: unknown;
  from?: string;
}

export interface PatchOptions {
  /** `status` for the status subresource. */
  subresource?: string;
  fieldManager?: string;
  /** Server-side apply only: take ownership of conflicting fields. */
  force?: boolean;
}

export interface WriteOptions {
  subresource?: string;
  fieldManager?: string;
}

export interface DeleteOptions {
  preconditions?: { uid?: string; resourceVersion?: string };
  propagationPolicy?: 'Foreground' | 'Background' | 'Orphan';
}

export interface WatchOptions {
  namespace?: string;
  resourceVersion: string;
  labelSelector?: string;
  fieldSelector?: string;
  allowWatchBookmarks?: boolean;
  /** Server-side watch timeout; the server ends the stream cleanly after it. */
  timeoutSeconds?: number;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchEvent<T> {
  type: WatchEventType;
  /** The object, or for `ERROR` a Status (`code`, `reason`, `message`). */
  object: T;
}

export interface WatchHandle {
  /** Ends the stream; `onDone` is then called with no error. */
  stop(): void;
}

/**
 * The Kubernetes API as controllers use it. `HttpKubeClient` talks to a real API server;
 * `FakeKubeClient` (test/support/fakes) is an in-memory object store with the same semantics
 * for unit tests.
 * Failed requests reject with an `ApiError`.
 */
export interface KubeClient {
  /** The object, or `undefined` if it does not exist. */
  get<T extends KubeObject>(
    type: ResourceType,
    name: string,
    namespace?: string,
  ): Promise<T | undefined>;
  list<T extends KubeObject>(type: ResourceType, options?: ListOptions): Promise<ObjectList<T>>;
  create<T extends KubeObject>(type: ResourceType, obj: T, options?: WriteOptions): Promise<T>;
  /** PUT: fails with a conflict when `metadata.resourceVersion` is stale. */
  replace<T extends KubeObject>(type: ResourceType, obj: T, options?: WriteOptions): Promise<T>;
  patch<T extends KubeObject>(
    type: ResourceType,
    name: string,
    namespace: string | undefined,
    patchType: PatchType,
    patch: unknown,
    options?: PatchOptions,
  ): Promise<T>;
  delete(
    type: ResourceType,
    name: string,
    namespace?: string,
    options?: DeleteOptions,
  ): Promise<void>;
  /**
   * Streams changes after `resourceVersion`. `onDone` is called exactly once: with an error
   * when the request or the stream failed, without one when the stream ended or was stopped.
   */
  watch<T extends KubeObject>(
    type: ResourceType,
    options: WatchOptions,
    onEvent: (event: WatchEvent<T>) => void,
    onDone: (error?: unknown) => void,
  ): Promise<WatchHandle>;
}
