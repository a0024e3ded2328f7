/**
 * The decisions the two content sidecars make alike, whatever the kind of content: whether a
 * content is theirs, whether it may be released, what a ready one still needs, which class
 * parameters reach the driver, the Secret a content's annotations name, the name a create call
 * gets, how a failure is written into a status, and which informer updates need a sync.
 * ./plan.ts and ./group-plan.ts word them for VolumeSnapshotContents and
 * VolumeGroupSnapshotContents.
 */
import { CSI_PARAMETER_PREFIX } from '../../api/csi-parameters.js';
import { deepEqual, hasAnnotation, isBeingDeleted, omit } from '../../kube/objects.js';
import type { KubeObject } from '../../kube/resource.js';

export interface SecretRef {
  name: string;
  namespace: string;
}

/** What both sidecars are told alike (upstream's flags of the same name). */
export interface SidecarBaseSettings {
  /** The CSI driver this sidecar serves (GetPluginInfo's name). */
  driverName: string;
  /** `--extra-create-metadata`: pass the snapshot object's and the content's names as parameters. */
  extraCreateMetadata: boolean;
}

/** What sets one kind of content apart in what both sidecars decide and write. */
export interface ContentKind<S> {
  /** "snapshot content", "group snapshot content": how messages name it. */
  what: string;
  /** Set by the sidecar while a create call may still be cutting a snapshot. */
  beingCreated: string;
  /** Set by the snapshot controller once the content's snapshot object is being deleted. */
  beingDeleted: string;
  /** The annotations that name the Secret of the create and delete calls. */
  secretAnnotations: { name: string; namespace: string };
  /** The `csi.storage.k8s.io/` keys of a class that the sidecars read themselves. */
  sidecarParameters: ReadonlySet<string>;
  /** The parameters `--extra-create-metadata` adds to a create call. */
  extraMetadata: { name: string; namespace: string; contentName: string };
  /** The status that records a failure (statusRecordingError, each kind's time format). */
  statusWithError(
    current: S | undefined,
    message: string,
    now: Date,
    options: { keepReadyToUse?: boolean },
  ): S | undefined;
}

/** The part of a kind a decision needs. */
type KindFacts<K extends keyof ContentKind<unknown>> = Pick<ContentKind<unknown>, K>;

/**
 * The plan for a content that is not this sidecar's (upstream isDriverMatch): it has no source,
 * or it or its class names another driver. Undefined for a content that is ours.
 */
export function planForeign(
  driverName: string,
  hasSource: boolean,
  content: { spec?: { driver?: string } },
  contentClass: { driver?: string } | undefined,
): { action: 'notOurs'; why: string } | undefined {
  const ours =
    hasSource &&
    content.spec?.driver === driverName &&
    (!contentClass || contentClass.driver === driverName);
  if (ours) return undefined;
  return { action: 'notOurs', why: `driver ${content.spec?.driver} is not ${driverName}` };
}

/**
 * Whether what the driver holds for a content may be released now (upstream shouldDelete): the
 * content is being deleted and either it is an unbound pre-provisioned one, or its snapshot
 * object is being deleted and no create call may still be in flight.
 */
export function mayRelease(
  content: KubeObject,
  kind: KindFacts<'beingCreated' | 'beingDeleted'>,
  unboundPreProvisioned: () => boolean,
): boolean {
  if (!isBeingDeleted(content)) return false;
  if (unboundPreProvisioned()) return true;
  if (hasAnnotation(content, kind.beingCreated)) return false;
  return hasAnnotation(content, kind.beingDeleted);
}

/**
 * The plan for a ready content: nothing to call, though the being-created annotation may have
 * outlived its call. Undefined for a content that is not ready.
 */
export function planReady(
  content: KubeObject & { status?: StatusWithError },
  kind: KindFacts<'beingCreated'>,
): { action: 'removeBeingCreated' } | { action: 'upToDate' } | undefined {
  if (content.status?.readyToUse !== true) return undefined;
  return hasAnnotation(content, kind.beingCreated)
    ? { action: 'removeBeingCreated' }
    : { action: 'upToDate' };
}

/** Class parameters minus the sidecars' own keys; an unknown reserved key is an error. */
export function withoutReservedParameters(
  parameters: Record<string, string>,
  kind: KindFacts<'sidecarParameters'>,
): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(parameters)) {
    if (!key.startsWith(CSI_PARAMETER_PREFIX)) {
      result[key] = value;
    } else if (!kind.sidecarParameters.has(key)) {
      throw new Error(
        `found unknown parameter key "${key}" with reserved namespace ${CSI_PARAMETER_PREFIX}`,
      );
    }
  }
  return result;
}

/**
 * A create call's parameters: the class's without the sidecars' own keys, and with
 * `--extra-create-metadata` the names of the snapshot object (`ref`) and of the content.
 */
export function createParameters(
  classParameters: Record<string, string> | undefined,
  kind: KindFacts<'sidecarParameters' | 'extraMetadata'>,
  settings: Pick<SidecarBaseSettings, 'extraCreateMetadata'>,
  ref: { name?: string; namespace?: string } | undefined,
  contentName: string,
): Record<string, string> {
  const parameters = withoutReservedParameters(classParameters ?? {}, kind);
  if (settings.extraCreateMetadata) {
    parameters[kind.extraMetadata.name] = ref?.name ?? '';
    parameters[kind.extraMetadata.namespace] = ref?.namespace ?? '';
    parameters[kind.extraMetadata.contentName] = contentName;
  }
  return parameters;
}

/**
 * The Secret the kind's two secret annotations on a content name (upstream reads both): none
 * when either is missing, an error when either is empty.
 */
export function annotatedSecretRef(
  content: KubeObject,
  kind: KindFacts<'what' | 'secretAnnotations'>,
): SecretRef | undefined {
  const annotations = content.metadata?.annotations ?? {};
  const name = annotations[kind.secretAnnotations.name];
  const namespace = annotations[kind.secretAnnotations.namespace];
  if (name === undefined || namespace === undefined) return undefined;
  if (!name || !namespace) {
    throw new Error(
      `cannot retrieve secrets for ${kind.what} ${content.metadata?.name}: ` +
        'secret name or namespace not specified',
    );
  }
  return { name, namespace };
}

/** A create call's name for an object's UID: -1 keeps the whole UID, else dashes go and it is cut. */
export function prefixedName(prefix: string, uid: string, uuidLength: number): string {
  if (uuidLength === -1) return `${prefix}-${uid}`;
  return `${prefix}-${uid.replaceAll('-', '').slice(0, uuidLength)}`;
}

/** What both content statuses have in common: readiness and the last error. */
interface StatusWithError {
  readyToUse?: boolean;
  error?: { time?: string; message?: string };
}

/**
 * The status that records a failure at `time`: `readyToUse: false` and the error, unless the
 * same message is already there (no write, no new Event, as upstream).
 */
export function statusRecordingError<S extends StatusWithError>(
  current: S | undefined,
  message: string,
  time: string,
  options: { keepReadyToUse?: boolean },
): S | undefined {
  if (current?.error?.message === message) return undefined;
  const next = { ...current } as S;
  next.error = { time, message };
  if (!options.keepReadyToUse) next.readyToUse = false;
  return next;
}

/**
 * Whether an informer update can need a sync (upstream ShouldEnqueueContentChange): changes to
 * status, finalizers, managed fields or the kind's being-created annotation are the sidecars'
 * own and are ignored, so a status write does not cut a poll's backoff short; a status turning
 * ready is not.
 */
export function contentChangeNeedsSync<C extends KubeObject & { status?: StatusWithError }>(
  previous: C,
  next: C,
  kind: KindFacts<'beingCreated'>,
): boolean {
  if (previous.status?.readyToUse !== true && next.status?.readyToUse === true) return true;
  return !deepEqual(comparable(previous, kind.beingCreated), comparable(next, kind.beingCreated));
}

/** The content without what the sidecar itself changes or what changes on every write. */
function comparable(content: KubeObject, beingCreated: string): Record<string, unknown> {
  const metadata = omit(content.metadata ?? {}, 'resourceVersion', 'managedFields', 'finalizers');
  const annotations = omit(content.metadata?.annotations ?? {}, beingCreated);
  if (Object.keys(annotations).length > 0) metadata.annotations = annotations;
  else delete metadata.annotations;
  return { ...omit(content, 'status'), metadata };
}
