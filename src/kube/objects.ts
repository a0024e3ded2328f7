import type { DeleteOptions, KubeClient } from './client.js';
import { isAlreadyExists } from './errors.js';
import type { KubeObject, ResourceType } from './resource.js';

/** A metav1.Condition. */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export type ConditionUpdate = Omit<Condition, 'lastTransitionTime'> & {
  lastTransitionTime?: string;
};

/**
 * The conditions with `update` applied, as a new array (the input is not modified).
 * `lastTransitionTime` moves only when the status changes (as meta.SetStatusCondition);
 * reason, message and observedGeneration are always refreshed.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  update: ConditionUpdate,
  now: Date,
): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((condition) => condition.type === update.type);
  const existing = index >= 0 ? list[index] : undefined;
  const next: Condition = {
    ...update,
    lastTransitionTime:
      existing && existing.status === update.status
        ? existing.lastTransitionTime
        : (update.lastTransitionTime ?? rfc3339(now)),
  };
  if (next.observedGeneration === undefined) delete next.observedGeneration;
  if (index >= 0) list[index] = next;
  else list.push(next);
  return list;
}

export function getCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((condition) => condition.type === type);
}

/** RFC 3339 with second precision, as metav1.Time serialises. */
export function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function isBeingDeleted(obj: KubeObject): boolean {
  return !!obj.metadata?.deletionTimestamp;
}

export function hasFinalizer(obj: KubeObject, finalizer: string): boolean {
  return obj.metadata?.finalizers?.includes(finalizer) ?? false;
}

export function hasAnnotation(obj: KubeObject, key: string, value?: string): boolean {
  const annotations = obj.metadata?.annotations ?? {};
  return Object.hasOwn(annotations, key) && (value === undefined || annotations[key] === value);
}

/**
 * Adds a finalizer unless present. The patch carries the cached resourceVersion, so a stale
 * cache yields a conflict (and a retry) instead of dropping someone else's finalizer.
 * Returns the updated object, or the given one when nothing had to change.
 */
export async function addFinalizer<T extends KubeObject>(
  client: KubeClient,
  type: ResourceType,
  obj: T,
  finalizer: string,
): Promise<T> {
  if (hasFinalizer(obj, finalizer)) return obj;
  return patchFinalizers(client, type, obj, [...(obj.metadata?.finalizers ?? []), finalizer]);
}

/** Removes a finalizer if present; the counterpart of `addFinalizer`. */
export async function removeFinalizer<T extends KubeObject>(
  client: KubeClient,
  type: ResourceType,
  obj: T,
  finalizer: string,
): Promise<T> {
  if (!hasFinalizer(obj, finalizer)) return obj;
  return patchFinalizers(
    client,
    type,
    obj,
    (obj.metadata?.finalizers ?? []).filter((existing) => existing !== finalizer),
  );
}

function patchFinalizers<T extends KubeObject>(
  client: KubeClient,
  type: ResourceType,
  obj: T,
  finalizers: string[],
): Promise<T> {
  return client.patch<T>(type, obj.metadata!.name!, obj.metadata?.namespace, 'merge', {
    metadata: { resourceVersion: obj.metadata?.resourceVersion, finalizers },
  });
}

/**
 * Writes `status` by difference: a merge patch of the status subresource holding only what
 * differs from `obj.status` (a field `status` lacks is removed), or no request at all when
 * nothing does; returns the object as written, or `obj`. With `guarded`, the patch carries the
 * resourceVersion of `obj`, so a status decided from a stale copy fails with a conflict.
 */
export async function patchStatusDiff<T extends KubeObject & { status?: object }>(
  client: KubeClient,
  type: ResourceType,
  obj: T,
  status: object,
  options: { guarded?: boolean; fieldManager?: string } = {},
): Promise<T> {
  const diff = createMergePatch(obj.status ?? {}, status);
  if (!diff) return obj;
  const body = options.guarded
    ? { metadata: { resourceVersion: obj.metadata?.resourceVersion }, status: diff }
    : { status: diff };
  return client.patch<T>(type, obj.metadata!.name!, obj.metadata?.namespace, 'merge', body, {
    subresource: 'status',
    ...(options.fieldManager ? { fieldManager: options.fieldManager } : {}),
  });
}

/** An RFC 7386 merge patch turning `before` into `after`, or `undefined` if they are equal. */
export function createMergePatch(
  before: unknown,
  after: unknown,
): Record<string, unknown> | undefined {
  if (!isPlainObject(before) || !isPlainObject(after)) {
    throw new Error('a merge patch is computed between two objects');
  }
  const patch: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(after)) {
    const old = before[key];
    if (deepEqual(old, value)) continue;
    if (isPlainObject(old) && isPlainObject(value)) {
      const nested = createMergePatch(old, value);
      if (nested) patch[key] = nested;
    } else {
      patch[key] = value === undefined ? null : value;
    }
  }
  for (const key of Object.keys(before)) {
    if (!Object.hasOwn(after, key) && before[key] !== undefined) patch[key] = null;
  }
  return Object.keys(patch).length > 0 ? patch : undefined;
}

/** Applies an RFC 7386 merge patch; returns a new value. */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return structuredClone(patch);
  const result: Record<string, unknown> = isPlainObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = applyMergePatch(result[key], value);
  }
  return result;
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a instanceof Date || b instanceof Date) {
    return new Date(a as string).getTime() === new Date(b as string).getTime();
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return (
      Array.isArray(a) &&
      Array.isArray(b) &&
      a.length === b.length &&
      a.every((item, i) => deepEqual(item, b[i]))
    );
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const keysA = Object.keys(a).filter((key) => a[key] !== undefined);
    const keysB = Object.keys(b).filter((key) => b[key] !== undefined);
    return keysA.length === keysB.length && keysA.every((key) => deepEqual(a[key], b[key]));
  }
  return false;
}

/** A shallow copy without the given top-level fields. */
export function omit(obj: object, ...keys: string[]): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...obj };
  for (const key of keys) delete copy[key];
  return copy;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date)
  );
}

/**
 * Creates `obj`, where a retry may find it made already (by this controller's earlier attempt,
 * whose answer was lost): the object as created, or undefined when it already existed.
 */
export async function createIfAbsent<T extends KubeObject>(
  client: KubeClient,
  type: ResourceType,
  obj: T,
): Promise<T | undefined> {
  try {
    return await client.create(type, obj);
  } catch (error) {
    if (isAlreadyExists(error)) return undefined;
    throw error;
  }
}

export type CreateOrPatchResult<T> = { operation: 'created' | 'patched' | 'unchanged'; object: T };

/**
 * controller-runtime's CreateOrPatch: reads the object named by `obj`, applies `mutate` to it
 * (or to `obj` when it does not exist yet) and creates it or merge-patches the difference.
 * `mutate` must be idempotent; it should set the fields this controller owns and nothing more.
 * Status is not written here (use `patchStatusDiff`).
 */
export async function createOrPatch<T extends KubeObject>(
  client: KubeClient,
  type: ResourceType,
  obj: T,
  mutate: (obj: T) => void,
): Promise<CreateOrPatchResult<T>> {
  const name = obj.metadata?.name;
  if (!name) throw new Error(`createOrPatch needs metadata.name on the ${type.kind}`);
  const existing = await client.get<T>(type, name, obj.metadata?.namespace);
  if (!existing) {
    const fresh = structuredClone(obj);
    mutate(fresh);
    return { operation: 'created', object: await client.create(type, fresh) };
  }
  const desired = structuredClone(existing);
  mutate(desired);
  const patch = createMergePatch(omit(existing, 'status'), omit(desired, 'status'));
  if (!patch) return { operation: 'unchanged', object: existing };
  return {
    operation: 'patched',
    object: await client.patch<T>(type, name, obj.metadata?.namespace, 'merge', patch),
  };
}

/**
 * Delete options that delete `obj` only as it was read: the same UID and resourceVersion, so a
 * change since (a finalizer added, a new object of the same name) makes the delete a conflict.
 */
export function onlyThisVersion(obj: KubeObject): DeleteOptions {
  const { uid, resourceVersion } = obj.metadata ?? {};
  return {
    preconditions: { ...(uid ? { uid } : {}), ...(resourceVersion ? { resourceVersion } : {}) },
  };
}
