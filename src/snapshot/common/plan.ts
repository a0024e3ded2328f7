/**
 * The vocabulary the plans of the snapshot controller (../controller/plan.ts) and of its group
 * paths (../group/plan.ts) share: a `Plan` of actions, how a failed write is reported, and the
 * steps both take the same way for a snapshot and its content as for a group and its content
 * (`KindPlans`, worded for each kind from its `KindDescription`).
 */
import type { SnapshotError } from '../../api/snapshot.js';
import {
  invalidSecretField,
  secretTemplates,
  type SecretField,
} from '../../api/secret-template.js';
import { rfc3339 } from '../../kube/objects.js';

export type EventType = 'Normal' | 'Warning';

export type EventAction = { type: 'event'; eventType: EventType; reason: string; message: string };

export interface Plan<A> {
  actions: A[];
  /** After the actions, fail the reconcile (retry with backoff) with this message. */
  retry?: string;
}

/** How a failed write is reported (upstream's update…ErrorStatusWithEvent, or an event). */
export interface FailureReport {
  reason: string;
  /** Prefix of the message; the write's error follows it. */
  message: string;
  /** Also record the message in `status.error` (and readyToUse=false) of the object. */
  toStatus: boolean;
  /** With `toStatus`: leave readyToUse alone, as some of upstream's group reports do. */
  keepReadyToUse?: boolean;
  /**
   * A Warning event of its own before the report, where upstream emits two for one failure;
   * its message is `message` + the write's error + `suffix`.
   */
  precededBy?: { reason: string; message: string; suffix?: string };
}

/** A snapshot or a group: both record their last error in `status.error`. */
export interface WithErrorStatus {
  status?: { error?: SnapshotError };
}

/** The object's own reference, as a content names it. */
export interface ObjectRef {
  name?: string;
  namespace?: string;
  uid?: string;
}

export interface NamedObject {
  metadata: { name?: string; namespace?: string; uid?: string };
}

export const has = (list: string[] | undefined, item: string) => list?.includes(item) ?? false;

export const keyOfObject = (obj: NamedObject) => `${obj.metadata.namespace}/${obj.metadata.name}`;

/** Go's `%q` of a string, which upstream uses to nest one error in another. */
export const quoted = (text: string) => JSON.stringify(text);

/** The failure upstream's controllerUpdateError words: a write to `name` failed. */
export const updateFailed = (name: string, detail: string) =>
  `snapshot controller failed to update ${name} on API server: ${detail}`;

export const warning = (reason: string, message: string): EventAction => ({
  type: 'event',
  eventType: 'Warning',
  reason,
  message,
});

export const normal = (reason: string, message: string): EventAction => ({
  type: 'event',
  eventType: 'Normal',
  reason,
  message,
});

export function sameError(a: SnapshotError | undefined, b: SnapshotError | undefined): boolean {
  return (
    (a?.message ?? undefined) === (b?.message ?? undefined) &&
    (a?.time ?? undefined) === (b?.time ?? undefined)
  );
}

/** The content's ref points at exactly this object (name, namespace and uid). */
export function refersTo(ref: ObjectRef, obj: NamedObject): boolean {
  return (
    ref.name === obj.metadata.name &&
    ref.namespace === obj.metadata.namespace &&
    !!ref.uid &&
    ref.uid === obj.metadata.uid
  );
}

/**
 * Whether a content's ref names the object: by name and namespace and, once bound (or always,
 * for a dynamic content, which is bound from the start), by uid.
 */
export function pointsBack(ref: ObjectRef, obj: NamedObject, preprovisioned: boolean): boolean {
  return preprovisioned
    ? ref.name === obj.metadata.name &&
        ref.namespace === obj.metadata.namespace &&
        (!ref.uid || ref.uid === obj.metadata.uid)
    : refersTo(ref, obj);
}

/**
 * The status patch and Warning event that record an error on the object, or none when the
 * same message is recorded already (so a retry loop writes once, as upstream's
 * update…ErrorStatusWithEvent).
 */
export function errorRecord(
  obj: WithErrorStatus,
  reason: string,
  message: string,
  now: Date,
  setReadyFalse = true,
): { status: Record<string, unknown>; event: EventAction } | undefined {
  if (obj.status?.error?.message === message) return undefined;
  const status: Record<string, unknown> = { error: { time: rfc3339(now), message } };
  if (setReadyFalse) status.readyToUse = false;
  return { status, event: warning(reason, message) };
}

/**
 * The default class of a driver: exactly one of its classes carries the is-default annotation
 * (upstream's SetDefault…Class texts, word for word).
 */
export function chooseDefault<
  C extends { driver: string; metadata: { annotations?: Record<string, string> } },
>(
  classes: C[],
  driver: string,
  annotation: string,
  noun: string,
): { class: C } | { error: string } {
  const defaults = classes.filter(
    (candidate) =>
      candidate.metadata.annotations?.[annotation] === 'true' && candidate.driver === driver,
  );
  if (defaults.length === 0) return { error: `cannot find default ${noun} class` };
  if (defaults.length > 1) {
    return { error: `${defaults.length} default snapshot classes were found` };
  }
  return { class: defaults[0]! };
}

interface Claim {
  metadata?: { name?: string; namespace?: string; uid?: string };
  spec?: { volumeName?: string };
  status?: { phase?: string };
}

interface Volume {
  spec?: { claimRef?: { name?: string; namespace?: string; uid?: string } };
}

/**
 * The PV of a source PVC, checked as upstream's getVolumeFrom… do before taking a snapshot,
 * with their texts: the PVC is Bound, its PV exists and is bound back to it. `what` is what
 * would be taken ("snapshot", "group snapshot").
 */
export function boundVolume<V extends Volume>(
  pvc: Claim,
  pv: V | undefined,
  what: string,
): { pv: V } | { error: string } {
  if (pvc.status?.phase !== 'Bound') {
    return {
      error: `the PVC ${pvc.metadata?.name} is not yet bound to a PV, will not attempt to take a ${what}`,
    };
  }
  const pvName = pvc.spec?.volumeName ?? '';
  if (!pv) {
    return {
      error: `failed to retrieve PV ${pvName} from the API server: ${quoted(`persistentvolumes "${pvName}" not found`)}`,
    };
  }
  const claim = pv.spec?.claimRef;
  if (
    !claim ||
    claim.name !== pvc.metadata?.name ||
    claim.namespace !== pvc.metadata?.namespace ||
    (!!claim.uid && claim.uid !== pvc.metadata?.uid)
  ) {
    return { error: 'claim in dataSource not bound or invalid' };
  }
  return { pv };
}

/**
 * The contents a snapshot or a group may be bound to: the one its status names, the pre-provisioned one its spec names and the dynamic
 * one its uid names.
 */
export function candidateContents(
  bound: string | undefined,
  preprovisioned: string | undefined,
  uid: string | undefined,
  dynamicName: (uid: string) => string,
): string[] {
  const names = [bound, preprovisioned, uid ? dynamicName(uid) : undefined];
  return [...new Set(names.filter((name): name is string => !!name))];
}

/** A status merge patch of the object a plan is for (null removes a field). */
export type StatusPatchAction<T extends string> = {
  type: T;
  status: Record<string, unknown>;
  onFailure?: FailureReport;
};

/** How a kind's status names its content, and how its events are worded. */
export interface MirrorNaming {
  /** The status field that names the bound content. */
  boundField: string;
  /** "Snapshot", "GroupSnapshot". */
  what: string;
  reasons: { created: string; ready: string };
}

interface MirroredStatus {
  readyToUse?: boolean;
  creationTime?: string;
  error?: SnapshotError;
}

/**
 * What the status of a snapshot or a group should gain from its content: the binding,
 * readyToUse, creationTime (once) and `report.error` (cleared with it); and a Normal event
 * the first time the content reports a creation time and the first time it is ready, as
 * upstream words them. `report` is the content's creation time and error as the kind reads
 * them. The patch is empty when the status says all of it already.
 */
export function mirrorStatus(
  object: NamedObject & { status?: MirroredStatus },
  content: { metadata: { name?: string }; status?: { readyToUse?: boolean } },
  naming: MirrorNaming,
  report: { creationTime?: string; error?: SnapshotError },
): { patch: Record<string, unknown>; events: EventAction[] } {
  const current: MirroredStatus = object.status ?? {};
  const ready = content.status?.readyToUse === true;
  const patch: Record<string, unknown> = {};
  const contentName = content.metadata.name;
  const bound = (current as Record<string, unknown>)[naming.boundField];
  if (bound !== contentName) patch[naming.boundField] = contentName;
  if (current.readyToUse !== ready) patch.readyToUse = ready;
  const created = !current.creationTime && !!report.creationTime;
  if (created) patch.creationTime = report.creationTime;
  if (!sameError(current.error, report.error)) patch.error = report.error ?? null;
  const { what, reasons } = naming;
  const key = keyOfObject(object);
  const events: EventAction[] = [];
  if (created) {
    events.push(
      normal(reasons.created, `${what} ${key} was successfully created by the CSI driver.`),
    );
  }
  if (ready && current.readyToUse !== true) {
    events.push(normal(reasons.ready, `${what} ${key} is ready to use.`));
  }
  return { patch, events };
}

/** A status mirror as actions: its patch, if any (reported as `onFailure` says when it fails), then its events. */
export function mirrorActions<T extends string>(
  type: T,
  { patch, events }: { patch?: Record<string, unknown>; events: EventAction[] },
  onFailure: FailureReport,
): (StatusPatchAction<T> | EventAction)[] {
  return patch && Object.keys(patch).length > 0
    ? [{ type, status: patch, onFailure }, ...events]
    : events;
}

/** Where a content names its object and its class (`volumeSnapshotRef`, `volumeSnapshotClassName`). */
export interface ContentFields {
  ref: string;
  className: string;
}

/** What the shared steps of a plan need to know of a kind: a snapshot or a group. */
export interface KindDescription<T extends string> {
  /** The action that patches the object's status. */
  statusAction: T;
  apiVersion: string;
  /**
   * "VolumeSnapshot", "VolumeGroupSnapshot". Upstream's names follow from it: the content's
   * kind (`…Content`), the status field that names it (`bound…ContentName`), the content's
   * fields that name the object and its class (`volume…Ref`, `volume…ClassName`) and the kind
   * as its events name it (without "Volume").
   */
  kind: string;
  /** "snapshot", "group snapshot". */
  noun: string;
  /** The name of the dynamic content of an object's uid. */
  contentNameFor: (uid: string) => string;
  /** The class annotation that marks a driver's default class. */
  defaultClassAnnotation: string;
  /** The class parameters that name the Secret of the content's CSI calls. */
  secretParameterKeys: Record<SecretField, string>;
  /** The annotations of a new content that record its deletion Secret. */
  deletionSecretKeys: { name: string; namespace: string };
  /** The annotation that marks a content whose object is being deleted. */
  beingDeletedAnnotation: string;
  reasons: {
    bindFailed: string;
    contentDeleteError: string;
    contentMissing: string;
    contentMismatch: string;
    contentMisbound: string;
    misbound: string;
    created: string;
    ready: string;
  };
}

/** What a plan of the kind's own vocabulary may hold: its status patch and events. */
export type KindAction<T extends string> = StatusPatchAction<T> | EventAction;

/** What a content's source says it was made for: a pre-provisioned object, a dynamic one. */
export interface ContentSource {
  preprovisioned: boolean;
  dynamic: boolean;
}

/** A content as the shared steps read it: its spec holds the ref and class of ContentFields. */
interface KindContent {
  metadata: { name?: string };
  spec: object;
}

type Secret = { name: string; namespace: string };

/**
 * The steps a snapshot's plan and a group's plan take alike, worded for one kind as upstream
 * words it: the error records of the object, the checks of its content and class, the binding
 * of a pre-provisioned content, a new dynamic content's metadata and ref, the status mirror.
 */
export class KindPlans<T extends string> {
  readonly contentKind: string;
  readonly contentFields: ContentFields;
  private readonly mirrorNaming: MirrorNaming;

  constructor(private readonly description: KindDescription<T>) {
    const { kind, reasons } = description;
    this.contentKind = `${kind}Content`;
    const field = kind.charAt(0).toLowerCase() + kind.slice(1);
    this.contentFields = { ref: `${field}Ref`, className: `${field}ClassName` };
    this.mirrorNaming = {
      boundField: `bound${kind}ContentName`,
      what: kind.replace(/^Volume/, ''),
      reasons: { created: reasons.created, ready: reasons.ready },
    };
  }

  /**
   * The status patch and Warning event that record an error on the object (none when the same
   * message is recorded already, so a retry loop writes once).
   */
  errorActions(
    obj: WithErrorStatus,
    reason: string,
    message: string,
    now: Date,
    setReadyFalse = true,
  ): KindAction<T>[] {
    const record = errorRecord(obj, reason, message, now, setReadyFalse);
    return record
      ? [{ type: this.description.statusAction, status: record.status }, record.event]
      : [];
  }

  /** An error recorded on the object, then the reconcile fails with it (and backs off). */
  failure(
    obj: WithErrorStatus,
    reason: string,
    message: string,
    now: Date,
    setReadyFalse = true,
  ): Plan<KindAction<T>> {
    return { actions: this.errorActions(obj, reason, message, now, setReadyFalse), retry: message };
  }

  /** The object's content is gone: reported on the object as upstream reports it. */
  contentMissing(obj: WithErrorStatus, now: Date): KindAction<T>[] {
    const { reasons } = this.description;
    return this.errorActions(obj, reasons.contentMissing, `${this.contentKind} is missing`, now);
  }

  /** The ref by which a content names its object. */
  refOf(content: KindContent): ObjectRef {
    return (content.spec as Record<string, ObjectRef>)[this.contentFields.ref]!;
  }

  /** The content points back at exactly this object (name, namespace and uid). */
  isBoundTo(content: KindContent, obj: NamedObject): boolean {
    return refersTo(this.refOf(content), obj);
  }

  /** The contents an object may be bound to (the content queue's keys it wakes). */
  contentsOf(bound: string | undefined, preprovisioned: string | undefined, uid?: string) {
    return candidateContents(bound, preprovisioned, uid, this.description.contentNameFor);
  }

  /** A ready, bound object only checks that its content still exists and points back at it. */
  readyBinding(
    obj: NamedObject & WithErrorStatus,
    content: KindContent | undefined,
    now: Date,
  ): KindAction<T>[] {
    if (!content) return this.contentMissing(obj, now);
    if (this.isBoundTo(content, obj)) return [];
    const message = `${this.contentKind} is not bound to the ${this.description.kind} correctly`;
    return this.errorActions(obj, this.description.reasons.misbound, message, now);
  }

  /**
   * The content an object expects, checked: a pre-provisioned object's must be pre-provisioned
   * and point back to it (by name and namespace; by uid once bound); a dynamic object's must be
   * dynamic and bound to it. A failed check is recorded on the object and retried.
   */
  checkedContent<C extends KindContent>(
    obj: NamedObject & WithErrorStatus,
    preprovisionedName: string | undefined,
    lookup: (name: string) => C | undefined,
    sourceOf: (content: C) => ContentSource,
    now: Date,
  ): { content?: C } | { failure: Plan<KindAction<T>> } {
    const preprovisioned = preprovisionedName !== undefined;
    const name = preprovisionedName ?? this.description.contentNameFor(obj.metadata.uid!);
    const content = lookup(name);
    if (!content) return {};
    const source = sourceOf(content);
    const { contentKind, description } = this;
    const { reasons } = description;
    const fail = (reason: string, message: string) => ({
      failure: this.failure(obj, reason, message, now),
    });
    if (preprovisioned && !source.preprovisioned) {
      return fail(
        reasons.contentMismatch,
        `${contentKind} is dynamically provisioned while expecting a pre-provisioned one`,
      );
    }
    if (!preprovisioned && !source.dynamic) {
      return fail(
        reasons.contentMismatch,
        `${contentKind} ${name} is pre-provisioned while expecting a dynamically provisioned one`,
      );
    }
    return pointsBack(this.refOf(content), obj, preprovisioned)
      ? { content }
      : fail(
          reasons.contentMisbound,
          `${contentKind} [${name}] is bound to a different ${description.noun}`,
        );
  }

  /**
   * The action that binds a pre-provisioned content to the object (fills its ref's uid and,
   * when the object names one, the class), and the content as it is once bound.
   */
  binding<A extends string, C extends KindContent>(
    type: A,
    obj: NamedObject,
    content: C,
    className: string | undefined,
  ) {
    const { what } = this.mirrorNaming;
    const action = {
      type,
      contentName: content.metadata.name!,
      uid: obj.metadata.uid!,
      ...(className !== undefined ? { className } : {}),
      onFailure: {
        reason: this.description.reasons.bindFailed,
        message: `${what} failed to bind ${this.contentKind},`,
        toStatus: true,
      },
    };
    return { action, content: this.withBinding(content, obj.metadata.uid, className) };
  }

  /**
   * A pre-provisioned content as it is once bound: its ref carries the object's uid and, when
   * the object names one, its class.
   */
  withBinding<C extends KindContent>(content: C, uid: string | undefined, className?: string): C {
    const fields = this.contentFields;
    return {
      ...content,
      spec: {
        ...content.spec,
        [fields.ref]: { ...this.refOf(content), uid },
        ...(className !== undefined ? { [fields.className]: className } : {}),
      },
    };
  }

  /** A new content's metadata: its name and, when the class names one, its deletion Secret. */
  newContentMetadata(
    name: string,
    secret: Secret | undefined,
  ): { name: string; annotations?: Record<string, string> } {
    if (!secret) return { name };
    return { name, annotations: secretAnnotations(secret, this.description.deletionSecretKeys) };
  }

  /** The ref a new dynamic content holds to its object, bound from the start. */
  referenceTo(obj: { metadata: NamedObject['metadata'] & { resourceVersion?: string } }) {
    const { name, namespace, uid, resourceVersion } = obj.metadata;
    const { apiVersion, kind } = this.description;
    return { apiVersion, kind, name, namespace, uid, resourceVersion };
  }

  /** The Secret of the content's CSI calls that the class names, each template filled by `resolve`. */
  classSecretRef(
    parameters: Record<string, string> | undefined,
    resolve: (field: SecretField, template: string) => TemplateResolution,
  ): { ref?: Secret } | { error: string } {
    const keys = this.description.secretParameterKeys;
    return secretReference(secretTemplates(parameters ?? {}, keys), keys, resolve);
  }

  /**
   * The content of an object being deleted: marked being-deleted (once), and deleted when its
   * policy says so and its deletion has not begun.
   */
  contentRelease<A extends string, D extends string>(
    content: KindContent & {
      metadata: { deletionTimestamp?: unknown; annotations?: Record<string, string> };
    },
    deleteContent: boolean,
    types: { annotate: A; delete: D },
  ): ContentReleaseAction<A, D>[] {
    const contentName = content.metadata.name!;
    const actions: ContentReleaseAction<A, D>[] = [];
    if (content.metadata.annotations?.[this.description.beingDeletedAnnotation] !== 'yes') {
      actions.push({ type: types.annotate, contentName });
    }
    if (deleteContent && !content.metadata.deletionTimestamp) {
      const onFailure = {
        reason: this.description.reasons.contentDeleteError,
        message: `Failed to delete ${this.description.noun} content API object:`,
        toStatus: false,
      };
      actions.push({ type: types.delete, contentName, onFailure });
    }
    return actions;
  }

  /** The default class of a driver, as upstream's SetDefault…Class chooses it. */
  chooseDefaultClass<
    C extends { driver: string; metadata: { annotations?: Record<string, string> } },
  >(classes: C[], driver: string): { class: C } | { error: string } {
    const { defaultClassAnnotation, noun } = this.description;
    return chooseDefault(classes, driver, defaultClassAnnotation, noun);
  }

  /** The PV of a source PVC, checked before the object is taken (see boundVolume). */
  boundVolume<V extends Volume>(pvc: Claim, pv: V | undefined): { pv: V } | { error: string } {
    return boundVolume(pvc, pv, this.description.noun);
  }

  /** What the object's status should gain from its content (see mirrorStatus). */
  statusMirror(
    obj: NamedObject & { status?: MirroredStatus },
    content: { metadata: { name?: string }; status?: { readyToUse?: boolean } },
    report: { creationTime?: string; error?: SnapshotError },
  ): { patch: Record<string, unknown>; events: EventAction[] } {
    return mirrorStatus(obj, content, this.mirrorNaming, report);
  }

  /** A status mirror as actions: its patch, if any (reported as `onFailure` says), then its events. */
  statusActions(
    mirror: { patch?: Record<string, unknown>; events: EventAction[] },
    onFailure: FailureReport,
  ): KindAction<T>[] {
    return mirrorActions(this.description.statusAction, mirror, onFailure);
  }
}

/** A Warning event, then the reconcile fails with its message. */
export function warnAndRetry(reason: string, message: string): Plan<EventAction> {
  return { actions: [warning(reason, message)], retry: message };
}

/** The annotations that record a deletion Secret under `keys`; none without a Secret. */
export function secretAnnotations(
  secret: Secret | undefined,
  keys: { name: string; namespace: string },
): Record<string, string> {
  return secret ? { [keys.name]: secret.name, [keys.namespace]: secret.namespace } : {};
}

/** One field's template filled, or the placeholders it may not use. */
export type TemplateResolution =
  { value: string } | { unknown: readonly string[]; allowed: readonly string[] };

/**
 * A Secret reference from two templates (undefined when neither is set), each filled by
 * `resolve`, with the texts of a template that is incomplete, unknown or yields no valid name.
 */
export function secretReference(
  templates: Record<SecretField, string> | 'incomplete' | undefined,
  keys: Record<SecretField, string>,
  resolve: (field: SecretField, template: string) => TemplateResolution,
): { ref?: { name: string; namespace: string } } | { error: string } {
  if (templates === undefined) return {};
  if (templates === 'incomplete') {
    return { error: `${keys.name} and ${keys.namespace} must be set together` };
  }
  const ref = { name: '', namespace: '' };
  for (const field of ['namespace', 'name'] as const) {
    const resolved = resolve(field, templates[field]);
    if ('unknown' in resolved) {
      const list = (names: readonly string[]) => names.map((key) => `\${${key}}`).join(', ');
      return {
        error: `${keys[field]}: "${templates[field]}" uses ${list(resolved.unknown)}; allowed: ${list(resolved.allowed)}`,
      };
    }
    ref[field] = resolved.value;
  }
  const invalid = invalidSecretField(ref);
  if (invalid === 'namespace') {
    return { error: `${keys.namespace} resolves to "${ref.namespace}", not a namespace name` };
  }
  if (invalid === 'name') {
    return { error: `${keys.name} resolves to "${ref.name}", not a Secret name` };
  }
  return { ref };
}

/** What releasing the content of an object being deleted does. */
export type ContentReleaseAction<A extends string, D extends string> =
  { type: A; contentName: string } | { type: D; contentName: string; onFailure: FailureReport };
