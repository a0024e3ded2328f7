import { randomUUID } from 'node:crypto';
import type {
  DeleteOptions,
  JsonPatchOperation,
  KubeClient,
  ListOptions,
  ObjectList,
  PatchOptions,
  PatchType,
  WatchEvent,
  WatchHandle,
  WatchOptions,
  WriteOptions,
} from '../../../src/kube/client.js';
import { ApiError } from '../../../src/kube/errors.js';
import { applyMergePatch, deepEqual, omit, rfc3339 } from '../../../src/kube/objects.js';
import {
  apiVersionOf,
  makeKey,
  type KubeObject,
  type ResourceType,
} from '../../../src/kube/resource.js';
import {
  fieldSelectorMatches,
  labelSelectorMatches,
  parseLabelSelector,
} from '../../../src/kube/selectors.js';

export type Verb = 'get' | 'list' | 'create' | 'update' | 'patch' | 'delete' | 'watch';

/** One request the fake served, for assertions on what a controller did. */
export interface Action {
  verb: Verb;
  /** The resource's plural, with `/status` for the status subresource. */
  resource: string;
  namespace?: string;
  name?: string;
  patchType?: PatchType;
  body?: unknown;
}

interface StoredEvent {
  resourceVersion: number;
  typeId: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: KubeObject;
}

interface Watcher {
  typeId: string;
  options: WatchOptions;
  onEvent: (event: WatchEvent<KubeObject>) => void;
  onDone: (error?: unknown) => void;
  done: boolean;
}

/** Kinds whose objects carry no status subresource, so writes keep `status` as given. */
const withoutStatusSubresource = new Set(['Event', 'Lease', 'ConfigMap', 'Secret', 'StorageClass']);

/**
 * An in-memory API server for unit tests (external-snapshotter's reactor, client-go's fake
 * clientset): resourceVersions and generations, optimistic-concurrency conflicts, finalizers
 * and deletionTimestamp, the status subresource, merge and JSON patches (server-side apply is
 * treated as a merge patch), selectors, watches that replay from a resourceVersion (410 after
 * `compact()`), injected one-shot errors and a log of every action.
 */
export class FakeKubeClient implements KubeClient {
  readonly actions: Action[] = [];
  private readonly store = new Map<string, Map<string, KubeObject>>();
  private readonly history: StoredEvent[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly injected: Array<{ verb: Verb | '*'; resource: string; error: Error }> = [];
  private readonly types = new Map<string, ResourceType>();
  private version = 1000;
  private compactedBefore = 0;
  private uidCounter = 0;

  /** Stores objects exactly as given (status included), as if they already existed. */
  seed(type: ResourceType, ...objects: KubeObject[]): void {
    for (const obj of objects) {
      const stored = structuredClone(obj);
      stored.apiVersion = apiVersionOf(type);
      stored.kind = type.kind;
      stored.metadata = {
        uid: `uid-${++this.uidCounter}`,
        creationTimestamp: rfc3339(new Date(0)),
        generation: 1,
        ...stored.metadata,
        resourceVersion: String(++this.version),
      };
      this.bucket(type).set(this.keyFor(type, stored), stored);
      this.record(type, 'ADDED', stored);
    }
  }

  /** A copy of the stored object, bypassing the action log and injected errors. */
  peek<T extends KubeObject>(type: ResourceType, name: string, namespace?: string): T | undefined {
    const obj = this.bucket(type).get(makeKey(name, type.namespaced ? namespace : undefined));
    return obj ? (structuredClone(obj) as T) : undefined;
  }

  /** Copies of every stored object of a type. */
  all<T extends KubeObject>(type: ResourceType): T[] {
    return [...this.bucket(type).values()].map((obj) => structuredClone(obj) as T);
  }

  /** Makes the next matching request fail with `error` (once per call of this method). */
  failNext(verb: Verb | '*', resource: string, error: Error): void {
    this.injected.push({ verb, resource, error });
  }

  clearActions(): void {
    this.actions.length = 0;
  }

  /** Actions that changed something (not get, list or watch). */
  get writes(): Action[] {
    return this.actions.filter((action) => !['get', 'list', 'watch'].includes(action.verb));
  }

  /** Forgets the event history, so watches from older resourceVersions get 410 Gone. */
  compact(): void {
    this.compactedBefore = this.version + 1;
    this.history.length = 0;
  }

  /** Ends every open watch, as an API server restart would. */
  closeWatches(error?: Error): void {
    for (const watcher of [...this.watchers]) this.finishWatch(watcher, error);
  }

  get openWatches(): number {
    return this.watchers.size;
  }

  async get<T extends KubeObject>(
    type: ResourceType,
    name: string,
    namespace?: string,
  ): Promise<T | undefined> {
    this.serve('get', type, undefined, { namespace, name });
    const obj = this.bucket(type).get(makeKey(name, type.namespaced ? namespace : undefined));
    return obj ? (structuredClone(obj) as T) : undefined;
  }

  async list<T extends KubeObject>(
    type: ResourceType,
    options: ListOptions = {},
  ): Promise<ObjectList<T>> {
    this.serve('list', type, undefined, { namespace: options.namespace });
    const items = [...this.bucket(type).values()].filter((obj) => this.matches(obj, options));
    return {
      items: items.map((obj) => structuredClone(obj) as T),
      resourceVersion: String(this.version),
    };
  }

  async create<T extends KubeObject>(
    type: ResourceType,
    obj: T,
    options: WriteOptions = {},
  ): Promise<T> {
    const metadata = { ...obj.metadata };
    if (!metadata.name && (metadata as { generateName?: string }).generateName) {
      metadata.name =
        (metadata as { generateName?: string }).generateName + randomUUID().slice(0, 5);
    }
    this.serve('create', type, options.subresource, {
      namespace: metadata.namespace,
      name: metadata.name,
      body: obj,
    });
    if (!metadata.name)
      throw new ApiError(422, 'Invalid', `${type.kind}: metadata.name is required`);
    if (type.namespaced && !metadata.namespace)
      throw new ApiError(422, 'Invalid', `${type.kind}: metadata.namespace is required`);
    const key = makeKey(metadata.name, type.namespaced ? metadata.namespace : undefined);
    if (this.bucket(type).has(key)) {
      throw new ApiError(409, 'AlreadyExists', `${type.plural} "${metadata.name}" already exists`);
    }
    const stored = structuredClone({ ...obj, metadata }) as KubeObject;
    if (!withoutStatusSubresource.has(type.kind)) delete (stored as { status?: unknown }).status;
    stored.apiVersion = apiVersionOf(type);
    stored.kind = type.kind;
    stored.metadata = {
      ...stored.metadata,
      uid: randomUUID(),
      resourceVersion: String(++this.version),
      generation: 1,
      creationTimestamp: rfc3339(new Date()),
    };
    delete stored.metadata.deletionTimestamp;
    if (!type.namespaced) delete stored.metadata.namespace;
    this.bucket(type).set(key, stored);
    this.record(type, 'ADDED', stored);
    return structuredClone(stored) as T;
  }

  async replace<T extends KubeObject>(
    type: ResourceType,
    obj: T,
    options: WriteOptions = {},
  ): Promise<T> {
    const name = obj.metadata?.name;
    const namespace = obj.metadata?.namespace;
    this.serve('update', type, options.subresource, { namespace, name, body: obj });
    const current = this.current(type, name, namespace);
    const expected = obj.metadata?.resourceVersion;
    if (expected && expected !== current.metadata?.resourceVersion) throw this.conflict(type, name);
    return this.commit(type, current, structuredClone(obj), options.subresource) as T;
  }

  async patch<T extends KubeObject>(
    type: ResourceType,
    name: string,
    namespace: string | undefined,
    patchType: PatchType,
    patch: unknown,
    options: PatchOptions = {},
  ): Promise<T> {
    this.serve('patch', type, options.subresource, { namespace, name, body: patch, patchType });
    const current = this.current(type, name, namespace);
    let next: KubeObject;
    if (patchType === 'json') {
      next = applyJsonPatch(current, patch as JsonPatchOperation[], () =>
        this.conflict(type, name),
      ) as KubeObject;
    } else {
      const expected = (patch as { metadata?: { resourceVersion?: string } }).metadata
        ?.resourceVersion;
      if (expected && expected !== current.metadata?.resourceVersion)
        throw this.conflict(type, name);
      next = applyMergePatch(current, patch) as KubeObject;
    }
    return this.commit(type, current, next, options.subresource) as T;
  }

  async delete(
    type: ResourceType,
    name: string,
    namespace?: string,
    options: DeleteOptions = {},
  ): Promise<void> {
    this.serve('delete', type, undefined, { namespace, name });
    const current = this.current(type, name, namespace);
    const { uid, resourceVersion } = options.preconditions ?? {};
    if (
      (uid && uid !== current.metadata?.uid) ||
      (resourceVersion && resourceVersion !== current.metadata?.resourceVersion)
    ) {
      throw this.conflict(type, name);
    }
    if ((current.metadata?.finalizers ?? []).length === 0) {
      this.bucket(type).delete(this.keyFor(type, current));
      const deleted = structuredClone(current);
      deleted.metadata!.resourceVersion = String(++this.version);
      this.record(type, 'DELETED', deleted);
      return;
    }
    if (current.metadata?.deletionTimestamp) return;
    const next = structuredClone(current);
    next.metadata!.deletionTimestamp = rfc3339(new Date());
    next.metadata!.resourceVersion = String(++this.version);
    this.bucket(type).set(this.keyFor(type, next), next);
    this.record(type, 'MODIFIED', next);
  }

  async watch<T extends KubeObject>(
    type: ResourceType,
    options: WatchOptions,
    onEvent: (event: WatchEvent<T>) => void,
    onDone: (error?: unknown) => void,
  ): Promise<WatchHandle> {
    this.serve('watch', type, undefined, { namespace: options.namespace });
    const watcher: Watcher = {
      typeId: this.typeId(type),
      options,
      onEvent: onEvent as (event: WatchEvent<KubeObject>) => void,
      onDone,
      done: false,
    };
    this.watchers.add(watcher);
    const from = Number(options.resourceVersion || this.version);
    const backlog = this.history.filter(
      (event) => event.typeId === watcher.typeId && event.resourceVersion > from,
    );
    queueMicrotask(() => {
      if (watcher.done) return;
      if (from + 1 < this.compactedBefore) {
        watcher.onEvent({
          type: 'ERROR',
          object: {
            kind: 'Status',
            code: 410,
            reason: 'Expired',
            message: `too old resource version: ${from}`,
          } as KubeObject,
        });
        this.finishWatch(watcher);
        return;
      }
      for (const event of backlog) this.deliver(watcher, event);
    });
    return { stop: () => this.finishWatch(watcher) };
  }

  private commit(
    type: ResourceType,
    current: KubeObject,
    proposed: KubeObject,
    subresource?: string,
  ): KubeObject {
    const next = structuredClone(current) as Record<string, unknown> & KubeObject;
    if (subresource === 'status') {
      next.status = (proposed as { status?: unknown }).status;
    } else {
      for (const key of Object.keys(next))
        if (key !== 'metadata' && key !== 'status') delete next[key];
      for (const [key, value] of Object.entries(proposed)) {
        if (key === 'metadata' || (key === 'status' && !withoutStatusSubresource.has(type.kind)))
          continue;
        next[key] = value;
      }
      const metadata = proposed.metadata ?? {};
      next.metadata = {
        ...metadata,
        name: current.metadata?.name,
        namespace: current.metadata?.namespace,
        uid: current.metadata?.uid,
        creationTimestamp: current.metadata?.creationTimestamp,
        deletionTimestamp: current.metadata?.deletionTimestamp,
        generation: current.metadata?.generation,
      };
      if (!next.metadata.deletionTimestamp) delete next.metadata.deletionTimestamp;
      if (!next.metadata.namespace) delete next.metadata.namespace;
      if (!deepEqual(specOf(current), specOf(next)))
        next.metadata.generation = (current.metadata?.generation ?? 0) + 1;
    }
    next.apiVersion = apiVersionOf(type);
    next.kind = type.kind;
    const before = { ...current, metadata: omit(current.metadata ?? {}, 'resourceVersion') };
    const after = { ...next, metadata: omit(next.metadata ?? {}, 'resourceVersion') };
    if (deepEqual(before, after)) return structuredClone(current);
    next.metadata!.resourceVersion = String(++this.version);
    if (next.metadata?.deletionTimestamp && (next.metadata.finalizers ?? []).length === 0) {
      this.bucket(type).delete(this.keyFor(type, next));
      this.record(type, 'DELETED', next);
      return structuredClone(next);
    }
    this.bucket(type).set(this.keyFor(type, next), next);
    this.record(type, 'MODIFIED', next);
    return structuredClone(next);
  }

  private serve(
    verb: Verb,
    type: ResourceType,
    subresource: string | undefined,
    details: { namespace?: string; name?: string; body?: unknown; patchType?: PatchType },
  ): void {
    this.types.set(this.typeId(type), type);
    const resource = subresource ? `${type.plural}/${subresource}` : type.plural;
    this.actions.push({
      verb,
      resource,
      namespace: details.namespace,
      name: details.name,
      ...(details.patchType ? { patchType: details.patchType } : {}),
      ...(details.body !== undefined ? { body: structuredClone(details.body) } : {}),
    });
    const index = this.injected.findIndex(
      (rule) =>
        (rule.verb === '*' || rule.verb === verb) &&
        (rule.resource === '*' || rule.resource === resource),
    );
    if (index >= 0) {
      const [rule] = this.injected.splice(index, 1);
      throw rule!.error;
    }
  }

  private current(
    type: ResourceType,
    name: string | undefined,
    namespace: string | undefined,
  ): KubeObject {
    const obj = name
      ? this.bucket(type).get(makeKey(name, type.namespaced ? namespace : undefined))
      : undefined;
    if (!obj) throw new ApiError(404, 'NotFound', `${type.plural} "${name}" not found`);
    return obj;
  }

  private conflict(type: ResourceType, name: string | undefined): ApiError {
    return new ApiError(
      409,
      'Conflict',
      `Operation cannot be fulfilled on ${type.plural} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    );
  }

  private matches(
    obj: KubeObject,
    options: { namespace?: string; labelSelector?: string; fieldSelector?: string },
  ): boolean {
    if (options.namespace && obj.metadata?.namespace !== options.namespace) return false;
    if (
      options.labelSelector &&
      !labelSelectorMatches(parseLabelSelector(options.labelSelector), obj.metadata?.labels)
    ) {
      return false;
    }
    return !options.fieldSelector || fieldSelectorMatches(options.fieldSelector, obj);
  }

  private record(type: ResourceType, eventType: StoredEvent['type'], obj: KubeObject): void {
    const event: StoredEvent = {
      resourceVersion: Number(obj.metadata?.resourceVersion),
      typeId: this.typeId(type),
      type: eventType,
      object: structuredClone(obj),
    };
    this.history.push(event);
    for (const watcher of this.watchers) {
      if (watcher.typeId === event.typeId) queueMicrotask(() => this.deliver(watcher, event));
    }
  }

  private deliver(watcher: Watcher, event: StoredEvent): void {
    if (watcher.done || !this.matches(event.object, watcher.options)) return;
    watcher.onEvent({ type: event.type, object: structuredClone(event.object) });
  }

  private finishWatch(watcher: Watcher, error?: unknown): void {
    if (watcher.done) return;
    watcher.done = true;
    this.watchers.delete(watcher);
    queueMicrotask(() => watcher.onDone(error));
  }

  private bucket(type: ResourceType): Map<string, KubeObject> {
    const id = this.typeId(type);
    let bucket = this.store.get(id);
    if (!bucket) this.store.set(id, (bucket = new Map()));
    return bucket;
  }

  private typeId(type: ResourceType): string {
    return `${type.group}/${type.plural}`;
  }

  private keyFor(type: ResourceType, obj: KubeObject): string {
    return makeKey(obj.metadata?.name ?? '', type.namespaced ? obj.metadata?.namespace : undefined);
  }
}

/** Everything but metadata and status: what bumps `metadata.generation`. */
function specOf(obj: KubeObject): Record<string, unknown> {
  return omit(obj, 'metadata', 'status');
}

/** Applies RFC 6902 operations; a failed `test` throws the error from `onTestFailed`. */
export function applyJsonPatch(
  target: unknown,
  operations: JsonPatchOperation[],
  onTestFailed: () => Error,
): unknown {
  let doc = structuredClone(target);
  for (const operation of operations) {
    const path = parsePointer(operation.path);
    switch (operation.op) {
      case 'test':
        if (!deepEqual(read(doc, path), operation.value)) throw onTestFailed();
        break;
      case 'add':
        doc = write(doc, path, structuredClone(operation.value), 'add');
        break;
      case 'replace':
        if (read(doc, path) === undefined)
          throw new ApiError(422, 'Invalid', `replace: ${operation.path} does not exist`);
        doc = write(doc, path, structuredClone(operation.value), 'replace');
        break;
      case 'remove':
        if (read(doc, path) === undefined)
          throw new ApiError(422, 'Invalid', `remove: ${operation.path} does not exist`);
        doc = write(doc, path, undefined, 'remove');
        break;
      case 'copy':
      case 'move': {
        const from = parsePointer(operation.from ?? '');
        const value = read(doc, from);
        if (value === undefined)
          throw new ApiError(422, 'Invalid', `${operation.op}: ${operation.from} does not exist`);
        if (operation.op === 'move') doc = write(doc, from, undefined, 'remove');
        doc = write(doc, path, structuredClone(value), 'add');
        break;
      }
    }
  }
  return doc;
}

function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/'))
    throw new ApiError(422, 'Invalid', `invalid JSON pointer "${pointer}"`);
  return pointer
    .slice(1)
    .split('/')
    .map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'));
}

function read(doc: unknown, path: string[]): unknown {
  let node = doc;
  for (const part of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

function write(
  doc: unknown,
  path: string[],
  value: unknown,
  op: 'add' | 'replace' | 'remove',
): unknown {
  if (path.length === 0) return value;
  const parent = read(doc, path.slice(0, -1));
  const last = path[path.length - 1]!;
  if (Array.isArray(parent)) {
    const index = last === '-' ? parent.length : Number(last);
    if (op === 'add') parent.splice(index, 0, value);
    else if (op === 'replace') parent[index] = value;
    else parent.splice(index, 1);
  } else if (parent !== null && typeof parent === 'object') {
    if (op === 'remove') delete (parent as Record<string, unknown>)[last];
    else (parent as Record<string, unknown>)[last] = value;
  } else {
    throw new ApiError(
      422,
      'Invalid',
      `JSON patch: the parent of /${path.join('/')} does not exist`,
    );
  }
  return doc;
}
