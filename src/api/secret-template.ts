/**
 * The Secrets a class names through its `csi.storage.k8s.io/<kind>-secret-name` and
 * `<kind>-secret-namespace` parameters. Both are templates: the sidecar that reads them fills
 * each `${...}` placeholder from the objects of the call. Which placeholders a template may use
 * depends on the kind of Secret and on the field (a namespace never sees the name of a
 * namespaced object), as in upstream's sidecars; the table below is the one place that says so.
 * How a bad template is reported stays with each caller, whose messages follow its upstream.
 */
import { CSI_PARAMETER_PREFIX } from './csi-parameters.js';

export type SecretField = 'name' | 'namespace';

const SNAPSHOTTER_NAMESPACE = ['volumesnapshotcontent.name', 'volumesnapshot.namespace'] as const;
const VOLUME_NAMESPACE = ['pv.name', 'pvc.namespace'] as const;
/** The provisioner's Secrets, and those it records on the PV for later calls, allow the same. */
const VOLUME_SECRET = {
  namespace: VOLUME_NAMESPACE,
  name: [...VOLUME_NAMESPACE, 'pvc.name'],
} as const;

/** Secret kind (the `<kind>` of its parameter keys) -> the placeholders each field may use. */
export const SECRET_TEMPLATE_PLACEHOLDERS = {
  /** VolumeSnapshotClass, read by the snapshot controller for CreateSnapshot and DeleteSnapshot. */
  snapshotter: {
    namespace: SNAPSHOTTER_NAMESPACE,
    name: [...SNAPSHOTTER_NAMESPACE, 'volumesnapshot.name'],
  },
  /** VolumeSnapshotClass, read by the CSI snapshotter for pre-provisioned contents: no snapshot. */
  'snapshotter-list': {
    namespace: ['volumesnapshotcontent.name'],
    name: ['volumesnapshotcontent.name'],
  },
  /** StorageClass, read by the CSI provisioner. */
  provisioner: VOLUME_SECRET,
  'controller-publish': VOLUME_SECRET,
  'node-stage': VOLUME_SECRET,
  'node-publish': VOLUME_SECRET,
  'controller-expand': VOLUME_SECRET,
  'node-expand': VOLUME_SECRET,
} as const satisfies Record<string, Record<SecretField, readonly string[]>>;

export type SecretTemplateKind = keyof typeof SECRET_TEMPLATE_PLACEHOLDERS;
/** The placeholders a kind's templates may use (its name field allows all of them). */
export type SecretPlaceholder<K extends SecretTemplateKind> =
  (typeof SECRET_TEMPLATE_PLACEHOLDERS)[K]['name'][number];

/** The parameter keys of a kind's Secret reference. */
export function secretParameterKeys(kind: SecretTemplateKind): Record<SecretField, string> {
  return {
    name: `${CSI_PARAMETER_PREFIX}${kind}-secret-name`,
    namespace: `${CSI_PARAMETER_PREFIX}${kind}-secret-namespace`,
  };
}

/**
 * The two templates under `keys`: undefined when neither is set, 'incomplete' when only one
 * is. Empty strings count as set; callers that treat them as missing say so.
 */
export function secretTemplates(
  parameters: Readonly<Record<string, string>>,
  keys: Record<SecretField, string>,
): Record<SecretField, string> | 'incomplete' | undefined {
  const name = parameters[keys.name];
  const namespace = parameters[keys.namespace];
  if (name === undefined && namespace === undefined) return undefined;
  if (name === undefined || namespace === undefined) return 'incomplete';
  return { name, namespace };
}

export type SecretTemplateResolution<K extends SecretTemplateKind> =
  | { value: string }
  /** Every placeholder the template uses but the field does not allow, in order of use. */
  | { unknown: string[]; allowed: readonly SecretPlaceholder<K>[] };

/** Fills each `${key}` of `template` from `values`; a key `values` lacks is unknown. */
export function fillPlaceholders(
  template: string,
  values: Readonly<Record<string, string>>,
): { value: string } | { unknown: string[]; allowed: readonly string[] } {
  const unknown: string[] = [];
  const value = template.replace(/\$\{([^}]*)\}/g, (_token, key: string) => {
    if (Object.hasOwn(values, key)) return values[key]!;
    unknown.push(key);
    return '';
  });
  return unknown.length > 0 ? { unknown, allowed: Object.keys(values) } : { value };
}

/** Fills the placeholders of one field's template; text outside `${...}` is kept as written. */
export function resolveSecretTemplate<K extends SecretTemplateKind>(
  kind: K,
  field: SecretField,
  template: string,
  values: Readonly<Record<SecretPlaceholder<K>, string>>,
): SecretTemplateResolution<K> {
  const allowed = SECRET_TEMPLATE_PLACEHOLDERS[kind][field] as readonly SecretPlaceholder<K>[];
  const filled = fillPlaceholders(
    template,
    Object.fromEntries(allowed.map((key) => [key, values[key]])),
  );
  return 'unknown' in filled ? { unknown: filled.unknown, allowed } : filled;
}

/**
 * The first field of a resolved reference that is not a name of its sort: the namespace must
 * be a DNS-1123 label, the name a Secret name (a DNS subdomain). Undefined when both are.
 */
export function invalidSecretField(ref: Record<SecretField, string>): SecretField | undefined {
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ref.namespace) || ref.namespace.length > 63) {
    return 'namespace';
  }
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(ref.name) || ref.name.length > 253) return 'name';
  return undefined;
}
