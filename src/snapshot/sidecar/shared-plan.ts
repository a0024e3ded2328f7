/**
 * The decisions the two content sidecars make alike, whatever the kind of content: whether a
 * content is theirs, whether it may be released, what a ready one still needs, which class
 * parameters reach the driver, the Secret a content's annotations name, the name a create call
 * gets, how a failure is written into a status and worded, and which informer updates need a
 * sync. A ContentKind holds what sets one kind apart; ./plan.ts and ./group-plan.ts make one
 * each, for VolumeSnapshotContents and VolumeGroupSnapshotContents.
 */
import { CSI_PARAMETER_PREFIX } from '../../api/csi-parameters.js';
import { deepEqual, hasAnnotation, isBeingDeleted, omit } from '../../kube/objects.js';
import type { KubeObject } from '../../kube/resource.js';

export interface SecretRef {
  name: string;
  namespace: string;
}

/**
 * What a sidecar is told (upstream's flags): the snapshot paths and the group paths each get
 * their own, from `--snapshot-name-*` and `--groupsnapshot-name-*`.
 */
export interface SidecarSettings {
  /** The CSI driver this sidecar serves (GetPluginInfo's name). */
  driverName: string;
  /** `--extra-create-metadata`: pass the snapshot object's and the content's names as parameters. */
  extraCreateMetadata: boolean;
  /** Create calls are named `<prefix>-<UID of the snapshot object>`. */
  namePrefix: string;
  /** -1 keeps the whole UID in a create call's name, else dashes go and it is cut. */
  nameUuidLength: number;
}

/** What both content statuses have in common: readiness and the last error. */
export interface StatusWithError {
  readyToUse?: boolean;
  error?: { time?: string; message?: string };
}

/** A content of either kind: an object with such a status. */
export type ContentObject<S extends StatusWithError> = KubeObject & { status?: S };

/** What sets one kind of content apart in what both sidecars decide and write. */
export interface ContentKindFacts<S extends StatusWithError, C extends ContentObject<S>> {
  /** "snapshot content", "group snapshot content": how messages name it. */
  what: string;
  /** "snapshot", "group snapshot": what the driver cuts, as failure messages name it. */
  noun: string;
  /** The Event reasons of failed create, check and delete calls (upstream's). */
  reasons: { creationFailed: string; checkFailed: string; deleteError: string };
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
  /** A pre-provisioned content no snapshot object is bound to: released once it is deleted. */
  unboundPreProvisioned(content: C): boolean;
  /** The status fields that describe what the driver holds, cleared once it is released. */
  heldFields: readonly (keyof S & string)[];
  /** How the kind's status writes a time (the error's). */
  statusTime(now: Date): string;
  /** Why a create call cannot be named for a snapshot object without a UID. */
  missingUid: string;
}

/** One kind of content, and the decisions both sidecars make alike for it. */
export class ContentKind<S extends StatusWithError, C extends ContentObject<S>> {
  constructor(readonly facts: ContentKindFacts<S, C>) {}

  get what(): string {
    return this.facts.what;
  }

  get beingCreated(): string {
    return this.facts.beingCreated;
  }

  /** The create call's name for the snapshot object's UID (upstream makeSnapshotName). */
  createName(uid: string | undefined, settings: SidecarSettings): string {
    if (!uid) throw new Error(this.facts.missingUid);
    return prefixedName(settings.namePrefix, uid, settings.nameUuidLength);
  }

  /**
   * Whether what the driver holds for a content may be released now (upstream shouldDelete):
   * the content is being deleted and either it is an unbound pre-provisioned one, or its
   * snapshot object is being deleted and no create call may still be in flight.
   */
  mayRelease(content: C): boolean {
    if (!isBeingDeleted(content)) return false;
    if (this.facts.unboundPreProvisioned(content)) return true;
    if (hasAnnotation(content, this.facts.beingCreated)) return false;
    return hasAnnotation(content, this.facts.beingDeleted);
  }

  /**
   * The plan for a ready content: nothing to call, though the being-created annotation may
   * have outlived its call. Undefined for a content that is not ready.
   */
  planReady(content: C): { action: 'removeBeingCreated' } | { action: 'upToDate' } | undefined {
    if (content.status?.readyToUse !== true) return undefined;
    return hasAnnotation(content, this.facts.beingCreated)
      ? { action: 'removeBeingCreated' }
      : { action: 'upToDate' };
  }

  /** Class parameters minus the sidecars' own keys; an unknown reserved key is an error. */
  withoutReservedParameters(parameters: Record<string, string>): Record<string, string> {
    const result: Record<string, string> = {};
    for (const [key, value] of Object.entries(parameters)) {
      if (!key.startsWith(CSI_PARAMETER_PREFIX)) {
        result[key] = value;
      } else if (!this.facts.sidecarParameters.has(key)) {
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
  createParameters(
    classParameters: Record<string, string> | undefined,
    settings: Pick<SidecarSettings, 'extraCreateMetadata'>,
    ref: { name?: string; namespace?: string } | undefined,
    contentName: string,
  ): Record<string, string> {
    const parameters = this.withoutReservedParameters(classParameters ?? {});
    if (settings.extraCreateMetadata) {
      const keys = this.facts.extraMetadata;
      parameters[keys.name] = ref?.name ?? '';
      parameters[keys.namespace] = ref?.namespace ?? '';
      parameters[keys.contentName] = contentName;
    }
    return parameters;
  }

  /**
   * The Secret the kind's two secret annotations on a content name (upstream reads both): none
   * when either is missing, an error when either is empty.
   */
  annotatedSecretRef(content: C): SecretRef | undefined {
    const annotations = content.metadata?.annotations ?? {};
    const name = annotations[this.facts.secretAnnotations.name];
    const namespace = annotations[this.facts.secretAnnotations.namespace];
    if (name === undefined || namespace === undefined) return undefined;
    if (!name || !namespace) {
      throw new Error(
        `cannot retrieve secrets for ${this.facts.what} ${content.metadata?.name}: ` +
          'secret name or namespace not specified',
      );
    }
    return { name, namespace };
  }

  /**
   * The status that records a failure: `readyToUse: false` and the error, unless the same
   * message is already there (no write, no new Event, as upstream).
   */
  statusWithError(
    current: S | undefined,
    message: string,
    now: Date,
    options: { keepReadyToUse?: boolean } = {},
  ): S | undefined {
    if (current?.error?.message === message) return undefined;
    const next = { ...current } as S;
    next.error = { time: this.facts.statusTime(now), message };
    if (!options.keepReadyToUse) next.readyToUse = false;
    return next;
  }

  /**
   * The status once what the driver held is released: nothing left that refers to it, and the
   * error of a refused deletion goes too, since it no longer holds.
   */
  statusAfterRelease(current: S | undefined): S | undefined {
    if (!current) return undefined;
    return omit(current, 'readyToUse', 'error', ...this.facts.heldFields) as S;
  }

  /** The message of a failed create or check call, worded as upstream's. */
  failureMessage(reason: string, detail: string): string {
    return reason === this.facts.reasons.creationFailed
      ? `Failed to create ${this.facts.noun}: ${detail}`
      : `Failed to check and update ${this.facts.noun} content: ${detail}`;
  }

  /** The message of a failed delete call. */
  deleteFailedMessage(detail: string): string {
    return `Failed to delete ${this.facts.noun}: ${detail}`;
  }

  /**
   * Whether an informer update can need a sync (upstream ShouldEnqueueContentChange): changes
   * to status, finalizers, managed fields or the being-created annotation are the sidecars' own
   * and are ignored, so a status write does not cut a poll's backoff short; a status turning
   * ready is not.
   */
  changeNeedsSync(previous: C, next: C): boolean {
    if (previous.status?.readyToUse !== true && next.status?.readyToUse === true) return true;
    return !deepEqual(this.comparable(previous), this.comparable(next));
  }

  /** The content without what the sidecar itself changes or what changes on every write. */
  private comparable(content: C): Record<string, unknown> {
    const metadata = omit(content.metadata ?? {}, 'resourceVersion', 'managedFields', 'finalizers');
    const annotations = omit(content.metadata?.annotations ?? {}, this.facts.beingCreated);
    if (Object.keys(annotations).length > 0) metadata.annotations = annotations;
    else delete metadata.annotations;
    return { ...omit(content, 'status'), metadata };
  }
}

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

/** A create call's name for an object's UID: -1 keeps the whole UID, else dashes go and it is cut. */
export function prefixedName(prefix: string, uid: string, uuidLength: number): string {
  if (uuidLength === -1) return `${prefix}-${uid}`;
  return `${prefix}-${uid.replaceAll('-', '').slice(0, uuidLength)}`;
}
