/**
 * The CSI provisioner's decisions, as pure functions: which PVCs to provision, the
 * CreateVolume request for one (blank, or restored from a VolumeSnapshot), the PV that records
 * the result, and when a released PV's volume is deleted. ./provisioner.ts carries them out.
 * Semantics follow upstream external-provisioner and sig-storage-lib-external-provisioner:
 * the same annotations, finalizers, names, Event reasons and error messages.
 */
import type { _csi_v1_VolumeCapability_AccessMode_Mode } from '../gen/csi/csi/v1/VolumeCapability.js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type {
  V1CSINode,
  V1Node,
  V1NodeSelectorTerm,
  V1PersistentVolume,
  V1PersistentVolumeClaim,
  V1SecretReference,
  V1StorageClass,
  V1VolumeNodeAffinity,
} from '@kubernetes/client-node';
import {
  SNAPSHOT_GROUP,
  VOLUME_SNAPSHOT_KIND,
  type VolumeSnapshot,
  type VolumeSnapshotContent,
} from '../api/snapshot.js';
import { grpcCodeOf } from '../csi/status.js';
import { parseGoBool } from '../util/bool.js';
import { formatBytes, parseQuantity } from '../api/quantity.js';
import { REFERENCE_GRANT_GROUP, isGranted, type ReferenceGrant } from './reference-grant.js';
import {
  CSI_PARAMETER_PREFIX,
  PARAM_FSTYPE,
  PARAM_PVC_NAME,
  PARAM_PVC_NAMESPACE,
  PARAM_PV_NAME,
} from '../api/csi-parameters.js';
import {
  resolveSecretTemplate,
  secretParameterKeys,
  secretTemplates,
  type SecretField,
  type SecretTemplateKind,
} from '../api/secret-template.js';

/** Set on a PVC by kube-controller-manager's PV binder: which provisioner should act. */
export const ANN_STORAGE_PROVISIONER = 'volume.kubernetes.io/storage-provisioner';
export const ANN_BETA_STORAGE_PROVISIONER = 'volume.beta.kubernetes.io/storage-provisioner';
/** Set on a PVC by the scheduler for WaitForFirstConsumer classes. */
export const ANN_SELECTED_NODE = 'volume.kubernetes.io/selected-node';
/** Set on a PV by its provisioner; the PV binder leaves deletion of such PVs to it. */
export const ANN_PROVISIONED_BY = 'pv.kubernetes.io/provisioned-by';
export const ANN_DELETION_SECRET_NAME = 'volume.kubernetes.io/provisioner-deletion-secret-name';
export const ANN_DELETION_SECRET_NAMESPACE =
  'volume.kubernetes.io/provisioner-deletion-secret-namespace';
/** On a VolumeSnapshotContent: allows restoring it into a volume of another mode. */
export const ANN_ALLOW_VOLUME_MODE_CHANGE =
  'snapshot.storage.kubernetes.io/allow-volume-mode-change';
/** On a provisioned PV with reclaim policy Delete: kept until the CSI volume is deleted. */
export const FINALIZER_PV = 'external-provisioner.volume.kubernetes.io/finalizer';
/** On a VolumeSnapshot while a volume is being provisioned from it. */
export const FINALIZER_SNAPSHOT_SOURCE =
  'provisioner.storage.kubernetes.io/volumesnapshot-as-source-protection';
/** The volume attribute that names the provisioner instance which created a volume. */
export const PROVISIONER_IDENTITY_KEY = 'storage.kubernetes.io/csiProvisionerIdentity';

/** Event reasons, as upstream emits them. */
export const REASON_PROVISIONING = 'Provisioning';
export const REASON_PROVISIONING_SUCCEEDED = 'ProvisioningSucceeded';
export const REASON_PROVISIONING_FAILED = 'ProvisioningFailed';
export const REASON_VOLUME_FAILED_DELETE = 'VolumeFailedDelete';

const PREFIX = CSI_PARAMETER_PREFIX;

/** Secret parameters: each pair names a Secret; the provisioner one feeds Create/DeleteVolume. */
const SECRET_PARAMS = {
  provisioner: 'provisioner',
  controllerPublish: 'controller-publish',
  nodeStage: 'node-stage',
  nodePublish: 'node-publish',
  controllerExpand: 'controller-expand',
  nodeExpand: 'node-expand',
} as const satisfies Record<string, SecretTemplateKind>;
type SecretKind = keyof typeof SECRET_PARAMS;
/** The provisioner Secret's keys before they had a kind; read when the current ones are unset. */
const LEGACY_SECRET_KEYS = {
  name: `${PREFIX}secret-name`,
  namespace: `${PREFIX}secret-namespace`,
};

const KNOWN_RESERVED = new Set([
  PARAM_FSTYPE,
  ...Object.values(LEGACY_SECRET_KEYS),
  ...Object.values(SECRET_PARAMS).flatMap((p) => Object.values(secretParameterKeys(p))),
]);

export interface ProvisionerSettings {
  /** The CSI driver served (GetPluginInfo's name), which StorageClasses name as provisioner. */
  driverName: string;
  /** `--volume-name-prefix`: PV and CreateVolume names are `<prefix>-<PVC UID>`. */
  volumeNamePrefix: string;
  /** `--volume-name-uuid-length`: -1 keeps the whole UID, else dashes go and it is cut. */
  volumeNameUuidLength: number;
  /** `--default-fstype`: for mount volumes whose class names none ('' leaves it to the driver). */
  defaultFsType: string;
  /** `--extra-create-metadata`: pass the PVC and PV names as parameters. */
  extraCreateMetadata: boolean;
  /** Recorded in each volume's attributes (`storage.kubernetes.io/csiProvisionerIdentity`). */
  identity: string;
  /**
   * `--prevent-volume-mode-conversion`: refuse to restore a snapshot into a PVC whose
   * volumeMode differs from the content's sourceVolumeMode, unless the content allows it
   * (`snapshot.storage.kubernetes.io/allow-volume-mode-change`).
   */
  preventVolumeModeConversion: boolean;
  /**
   * `--feature-gates=CrossNamespaceVolumeDataSource=true`: provision from a `dataSourceRef`
   * in another namespace when a ReferenceGrant there allows it (off: refuse any such PVC).
   */
  crossNamespaceVolumeDataSource: boolean;
}

export const DEFAULT_PROVISIONER_SETTINGS: Omit<ProvisionerSettings, 'driverName' | 'identity'> = {
  volumeNamePrefix: 'pvc',
  volumeNameUuidLength: -1,
  defaultFsType: '',
  extraCreateMetadata: false,
  preventVolumeModeConversion: true,
  crossNamespaceVolumeDataSource: false,
};

/** What the driver can do, from GetPluginCapabilities / ControllerGetCapabilities. */
export interface DriverCapabilities {
  createDeleteVolume: boolean;
  createDeleteSnapshot: boolean;
  /** VOLUME_ACCESSIBILITY_CONSTRAINTS: volumes carry topology, PVs get node affinity. */
  topology: boolean;
  singleNodeMultiWriter: boolean;
}

/** Whether this provisioner should act on a PVC (upstream shouldProvision). */
export function shouldProvision(
  pvc: V1PersistentVolumeClaim,
  storageClass: V1StorageClass | undefined,
  driverName: string,
): { provision: true } | { provision: false; why: string } {
  if (pvc.spec?.volumeName) return { provision: false, why: 'already bound to a volume' };
  if (pvc.metadata?.deletionTimestamp) return { provision: false, why: 'being deleted' };
  const annotations = pvc.metadata?.annotations ?? {};
  const provisioner =
    annotations[ANN_STORAGE_PROVISIONER] ?? annotations[ANN_BETA_STORAGE_PROVISIONER];
  if (provisioner !== driverName) {
    return { provision: false, why: `provisioner annotation is ${provisioner ?? 'absent'}` };
  }
  if (!storageClass) return { provision: false, why: 'its StorageClass does not exist' };
  if (storageClass.provisioner !== driverName) {
    return {
      provision: false,
      why: `its StorageClass is provisioned by ${storageClass.provisioner}`,
    };
  }
  if (
    storageClass.volumeBindingMode === 'WaitForFirstConsumer' &&
    !annotations[ANN_SELECTED_NODE]
  ) {
    return { provision: false, why: 'WaitForFirstConsumer and no node selected yet' };
  }
  return { provision: true };
}

/** The PV (and CreateVolume) name for a PVC (upstream makeVolumeName). */
export function volumeName(pvcUid: string | undefined, settings: ProvisionerSettings): string {
  if (!settings.volumeNamePrefix) throw new Error('volume name prefix cannot be of length 0');
  if (!pvcUid) throw new Error('corrupted PVC object, it is missing UID');
  if (settings.volumeNameUuidLength === -1) return `${settings.volumeNamePrefix}-${pvcUid}`;
  const compact = pvcUid.replaceAll('-', '').slice(0, settings.volumeNameUuidLength);
  return `${settings.volumeNamePrefix}-${compact}`;
}

/** CSI access modes, spelled as in csi.proto. */
export type CsiAccessMode = Exclude<
  keyof typeof _csi_v1_VolumeCapability_AccessMode_Mode,
  'UNKNOWN'
>;

export interface VolumeCapabilityPlan {
  accessType: { block: true } | { mount: { fsType: string; mountFlags: string[] } };
  accessMode: CsiAccessMode;
}

export type Topology = Record<string, string>;

export interface CreateVolumeCall {
  name: string;
  requiredBytes: number;
  parameters: Record<string, string>;
  capabilities: VolumeCapabilityPlan[];
  /** CSI snapshot id to restore from. */
  snapshotId?: string;
  accessibility?: { requisite: Topology[]; preferred: Topology[] };
  /** The Secret whose data goes into the request's `secrets`. */
  secretRef?: V1SecretReference;
}

export interface ProvisionPlan {
  call: CreateVolumeCall;
  fsType: string;
  /** Secret references recorded on the PV for the later CSI calls. */
  secretRefs: Partial<Record<SecretKind, V1SecretReference>>;
  /** A VolumeSnapshot to protect with FINALIZER_SNAPSHOT_SOURCE while provisioning. */
  protectSnapshot?: { namespace: string; name: string };
}

/** Why a PVC cannot be provisioned now; `ignore` when another component is meant to act. */
export interface ProvisionRefusal {
  message: string;
  ignore?: boolean;
}

/** Everything a provisioning decision reads; the controller fetches it, this stays pure. */
export interface ProvisionInput {
  pvc: V1PersistentVolumeClaim;
  storageClass: V1StorageClass;
  settings: ProvisionerSettings;
  capabilities: DriverCapabilities;
  /** The VolumeSnapshot the PVC's data source names, undefined when it does not exist. */
  snapshot?: VolumeSnapshot;
  /** Its bound content, undefined when it does not exist. */
  content?: VolumeSnapshotContent;
  /**
   * ReferenceGrants in the data source's namespace, read only for a cross-namespace
   * `dataSourceRef` with the feature on; `not-served` when the API server has no such kind.
   */
  referenceGrants?: ReferenceGrant[] | 'not-served';
  /** The node the scheduler selected (WaitForFirstConsumer), when there is one. */
  selectedNode?: V1Node;
  /** CSINode objects, for the topology keys the driver registered per node. */
  csiNodes: V1CSINode[];
  nodes: V1Node[];
}

/** The data source a PVC names: dataSourceRef wins, as the API server mirrors them. */
export function dataSourceOf(
  pvc: V1PersistentVolumeClaim,
): { apiGroup?: string; kind: string; name: string; namespace: string } | undefined {
  const ref = pvc.spec?.dataSourceRef ?? pvc.spec?.dataSource;
  if (!ref) return undefined;
  const namespace =
    (ref as { namespace?: string }).namespace || pvc.metadata?.namespace || 'default';
  return { apiGroup: ref.apiGroup, kind: ref.kind, name: ref.name, namespace };
}

/** The namespace a PVC's `dataSourceRef` names explicitly, if it names one. */
function dataSourceRefNamespace(pvc: V1PersistentVolumeClaim): string | undefined {
  return (pvc.spec?.dataSourceRef as { namespace?: string } | undefined)?.namespace || undefined;
}

/**
 * Why a PVC may not use the data source it names in another namespace (upstream
 * csiProvisioner.dataSource): the CrossNamespaceVolumeDataSource gate is off, the ReferenceGrant
 * API is not served, or no ReferenceGrant in the source's namespace allows it. Undefined when
 * the source is in the PVC's namespace, or a grant allows it.
 */
export function crossNamespaceRefusal(
  input: Pick<ProvisionInput, 'pvc' | 'settings' | 'referenceGrants'>,
): ProvisionRefusal | undefined {
  const { pvc, settings } = input;
  const refNamespace = dataSourceRefNamespace(pvc);
  if (!refNamespace) return undefined;
  const ref = pvc.spec!.dataSourceRef!;
  const namespace = pvc.metadata?.namespace ?? '';
  if (!settings.crossNamespaceVolumeDataSource) {
    return {
      message:
        `dataSourceRef namespace specified but the CrossNamespaceVolumeDataSource feature is ` +
        `disabled: the snapback controller must run with ` +
        `--feature-gates=CrossNamespaceVolumeDataSource=true (chart value ` +
        `controller.crossNamespaceVolumeDataSource), or the PVC must name a data source in ` +
        `its own namespace ${namespace}`,
    };
  }
  if (refNamespace === namespace) return undefined;
  const what = `${ref.kind} ${refNamespace}/${ref.name}`;
  if (input.referenceGrants === 'not-served') {
    return {
      message:
        `dataSourceRef names ${what} in another namespace, which needs a ReferenceGrant, but ` +
        `the API server does not serve referencegrants.${REFERENCE_GRANT_GROUP}/v1beta1: ` +
        `install the Gateway API ReferenceGrant CRD, then create a ReferenceGrant in namespace ` +
        `${refNamespace}`,
    };
  }
  const granted = isGranted(
    {
      fromNamespace: namespace,
      namespace: refNamespace,
      apiGroup: ref.apiGroup,
      kind: ref.kind,
      name: ref.name,
    },
    input.referenceGrants ?? [],
  );
  if (granted) return undefined;
  return {
    message:
      `accessing ${refNamespace}/${ref.name} of ${ref.kind} dataSource from ` +
      `${namespace}/${pvc.metadata?.name} isn't allowed: create a ReferenceGrant in namespace ` +
      `${refNamespace} whose spec.from lists {group: "", kind: PersistentVolumeClaim, ` +
      `namespace: ${namespace}} and whose spec.to lists {group: "${ref.apiGroup ?? ''}", ` +
      `kind: ${ref.kind}, name: ${ref.name}} (or no name, for every ${ref.kind} there)`,
  };
}

/** The CreateVolume call for a PVC, or why it cannot be made (upstream prepareProvision). */
export function planProvision(input: ProvisionInput): ProvisionPlan | ProvisionRefusal {
  const { pvc, storageClass, settings, capabilities } = input;
  const source = dataSourceOf(pvc);
  if (source) {
    const refused = crossNamespaceRefusal(input);
    if (refused) return refused;
    if (!source.name) return { message: `the PVC source not found for PVC ${pvc.metadata?.name}` };
    if (source.kind === VOLUME_SNAPSHOT_KIND) {
      if (source.apiGroup !== SNAPSHOT_GROUP) {
        return {
          message:
            `the PVC source does not belong to the right APIGroup. ` +
            `Expected ${SNAPSHOT_GROUP}, Got ${source.apiGroup ?? ''}`,
        };
      }
    } else if (source.kind === 'PersistentVolumeClaim' && !source.apiGroup) {
      return {
        message:
          `cloning from PersistentVolumeClaim ${source.name} is not supported by ` +
          `${settings.driverName}; restore from a VolumeSnapshot of it instead`,
      };
    } else {
      return {
        ignore: true,
        message: `data source (${source.kind}) is not handled by the provisioner, assuming an external populator will provision it`,
      };
    }
  }
  if (!capabilities.createDeleteVolume) {
    return {
      message:
        'CSI driver does not support dynamic provisioning: controller CREATE_DELETE_VOLUME capability is not reported',
    };
  }
  if (source && !capabilities.createDeleteSnapshot) {
    return {
      message:
        'CSI driver does not support snapshot restore: controller CREATE_DELETE_SNAPSHOT capability is not reported',
    };
  }
  if (pvc.spec?.selector) return { message: 'claim Selector is not supported' };

  let name: string;
  let fsType: string;
  let requiredBytes: number;
  let parameters: Record<string, string>;
  try {
    name = volumeName(pvc.metadata?.uid, settings);
    fsType = fsTypeOf(storageClass.parameters ?? {}, settings.defaultFsType);
    requiredBytes = requestedBytes(pvc);
    parameters = driverParameters(storageClass.parameters ?? {});
  } catch (error) {
    return { message: (error as Error).message };
  }
  const capabilitiesPlan = volumeCapabilities(pvc, storageClass, fsType, capabilities);
  if ('message' in capabilitiesPlan) return capabilitiesPlan;

  const call: CreateVolumeCall = {
    name,
    requiredBytes,
    parameters,
    capabilities: capabilitiesPlan,
  };
  let protectSnapshot: ProvisionPlan['protectSnapshot'];
  if (source) {
    const snapshotId = snapshotSource(input, source.name, requiredBytes);
    if (typeof snapshotId !== 'string') {
      return {
        message: `error getting handle for DataSource Type ${source.kind} by Name ${source.name}: ${snapshotId.message}`,
      };
    }
    call.snapshotId = snapshotId;
    protectSnapshot = { namespace: source.namespace, name: source.name };
  }

  if (capabilities.topology) {
    const requirement = accessibilityRequirements(input);
    if ('message' in requirement) return requirement;
    if (requirement.requisite.length > 0) call.accessibility = requirement;
  }

  const secretRefs: ProvisionPlan['secretRefs'] = {};
  try {
    for (const kind of Object.keys(SECRET_PARAMS) as SecretKind[]) {
      const ref = secretReference(kind, storageClass.parameters ?? {}, name, pvc);
      if (ref) secretRefs[kind] = ref;
    }
  } catch (error) {
    return { message: (error as Error).message };
  }
  call.secretRef = secretRefs.provisioner;

  if (settings.extraCreateMetadata) {
    call.parameters[PARAM_PVC_NAME] = pvc.metadata?.name ?? '';
    call.parameters[PARAM_PVC_NAMESPACE] = pvc.metadata?.namespace ?? '';
    call.parameters[PARAM_PV_NAME] = name;
  }
  return { call, fsType, secretRefs, protectSnapshot };
}

export function isRefusal(plan: ProvisionPlan | ProvisionRefusal): plan is ProvisionRefusal {
  return 'message' in plan;
}

function requestedBytes(pvc: V1PersistentVolumeClaim): number {
  const storage = pvc.spec?.resources?.requests?.storage;
  if (storage === undefined) {
    throw new Error(
      `PVC ${pvc.metadata?.name} requests no storage (spec.resources.requests.storage)`,
    );
  }
  return parseQuantity(String(storage));
}

function fsTypeOf(parameters: Record<string, string>, defaultFsType: string): string {
  const found = Object.entries(parameters).filter(
    ([key]) => key.toLowerCase() === 'fstype' || key === PARAM_FSTYPE,
  );
  if (found.length > 1) {
    throw new Error(`fstype specified in parameters with both "fstype" and "${PARAM_FSTYPE}" keys`);
  }
  return found[0]?.[1] || defaultFsType;
}

/** Class parameters without the provisioner's own keys; an unknown reserved key is an error. */
export function driverParameters(parameters: Record<string, string>): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(parameters)) {
    if (!key.startsWith(PREFIX)) {
      result[key] = value;
    } else if (!KNOWN_RESERVED.has(key)) {
      throw new Error(
        `failed to strip CSI Parameters of prefixed keys: found unknown parameter key "${key}" with reserved namespace ${PREFIX}`,
      );
    }
  }
  return result;
}

/** PVC access modes as CSI access modes (csi-lib-utils accessmodes.ToCSIAccessMode). */
function volumeCapabilities(
  pvc: V1PersistentVolumeClaim,
  storageClass: V1StorageClass,
  fsType: string,
  capabilities: DriverCapabilities,
): VolumeCapabilityPlan[] | ProvisionRefusal {
  const modes = pvc.spec?.accessModes ?? [];
  if (modes.length === 0) return { message: `PVC ${pvc.metadata?.name} has no access modes` };
  if (modes.includes('ReadWriteOncePod') && modes.length > 1) {
    return { message: 'ReadWriteOncePod may not be combined with other access modes' };
  }
  const block = pvc.spec?.volumeMode === 'Block';
  const result: VolumeCapabilityPlan[] = [];
  for (const mode of modes) {
    let accessMode: CsiAccessMode;
    switch (mode) {
      case 'ReadWriteOnce':
        accessMode = capabilities.singleNodeMultiWriter
          ? 'SINGLE_NODE_MULTI_WRITER'
          : 'SINGLE_NODE_WRITER';
        break;
      case 'ReadWriteOncePod':
        accessMode = capabilities.singleNodeMultiWriter
          ? 'SINGLE_NODE_SINGLE_WRITER'
          : 'SINGLE_NODE_WRITER';
        break;
      case 'ReadOnlyMany':
        accessMode = 'MULTI_NODE_READER_ONLY';
        break;
      case 'ReadWriteMany':
        accessMode = 'MULTI_NODE_MULTI_WRITER';
        break;
      default:
        return { message: `unknown access mode ${mode}` };
    }
    result.push({
      accessMode,
      accessType: block
        ? { block: true }
        : { mount: { fsType, mountFlags: storageClass.mountOptions ?? [] } },
    });
  }
  return result;
}

/** The CSI snapshot id to restore from, or why not (upstream getSnapshotSource). */
function snapshotSource(
  input: ProvisionInput,
  name: string,
  requiredBytes: number,
): string | ProvisionRefusal {
  const { snapshot, content, pvc, storageClass } = input;
  if (!snapshot) return { message: `error getting snapshot ${name} from api server: not found` };
  if (
    snapshot.metadata?.deletionTimestamp &&
    !snapshot.metadata.finalizers?.includes(FINALIZER_SNAPSHOT_SOURCE)
  ) {
    return { message: `snapshot ${name} is being deleted` };
  }
  const notBound = { message: `snapshot ${name} not bound` };
  if (!snapshot.status?.boundVolumeSnapshotContentName || !content) return notBound;
  const ref = content.spec.volumeSnapshotRef;
  if (
    ref?.uid !== snapshot.metadata?.uid ||
    ref?.namespace !== snapshot.metadata?.namespace ||
    ref?.name !== snapshot.metadata?.name ||
    content.spec.driver !== storageClass.provisioner
  ) {
    return notBound;
  }
  if (snapshot.status.readyToUse !== true) return { message: `snapshot ${name} is not Ready` };
  const handle = content.status?.snapshotHandle;
  if (!handle) return { message: `snapshot handle ${name} is not available` };
  if (snapshot.status.restoreSize !== undefined) {
    const restoreBytes = parseQuantity(String(snapshot.status.restoreSize));
    if (requiredBytes < restoreBytes) {
      return {
        message:
          `requested volume size ${requiredBytes} is less than the size ${restoreBytes} for the ` +
          `source snapshot ${name}: request at least ${formatBytes(restoreBytes)} ` +
          `(spec.resources.requests.storage)`,
      };
    }
  }
  const modeChange = volumeModeChangeRefusal(input.settings, pvc, content);
  if (modeChange) return { message: modeChange };
  return handle;
}

/**
 * Why a restore of `content` into `pvc` may not change the volume mode, if it may not
 * (upstream's --prevent-volume-mode-conversion check in getSnapshotSource): only when both
 * modes are known and differ, and the content does not allow it by an annotation that
 * strconv.ParseBool reads as true.
 */
export function volumeModeChangeRefusal(
  settings: Pick<ProvisionerSettings, 'preventVolumeModeConversion'>,
  pvc: V1PersistentVolumeClaim,
  content: VolumeSnapshotContent,
): string | undefined {
  if (!settings.preventVolumeModeConversion) return undefined;
  const sourceMode = content.spec.sourceVolumeMode;
  const targetMode = pvc.spec?.volumeMode;
  if (!sourceMode || !targetMode || sourceMode === targetMode) return undefined;
  const contentName = content.metadata?.name;
  const refused =
    `requested volume ${pvc.metadata?.namespace}/${pvc.metadata?.name} (volumeMode ` +
    `${targetMode}) modifies the mode of the source volume (${sourceMode}) but does not have ` +
    `permission to do so: `;
  const allow = content.metadata?.annotations?.[ANN_ALLOW_VOLUME_MODE_CHANGE];
  if (allow === undefined) {
    return (
      `${refused}the ${ANN_ALLOW_VOLUME_MODE_CHANGE} annotation is not present on ` +
      `snapshotcontent ${contentName}; use volumeMode ${sourceMode}, or have an administrator ` +
      `set it to "true"`
    );
  }
  const allowed = parseGoBool(allow);
  if (allowed === undefined) {
    return (
      `${refused}the ${ANN_ALLOW_VOLUME_MODE_CHANGE} annotation on snapshotcontent ` +
      `${contentName} is "${allow}", not a boolean (true or false)`
    );
  }
  if (!allowed) {
    return `${refused}${ANN_ALLOW_VOLUME_MODE_CHANGE} is set to false on snapshotcontent ${contentName}`;
  }
  return undefined;
}

/** Topology keys each node registered for the driver (CSINode spec.drivers[].topologyKeys). */
function topologyKeysByNode(csiNodes: V1CSINode[], driverName: string): Map<string, string[]> {
  const result = new Map<string, string[]>();
  for (const csiNode of csiNodes) {
    const driver = csiNode.spec?.drivers?.find((d) => d.name === driverName);
    if (driver && csiNode.metadata?.name)
      result.set(csiNode.metadata.name, driver.topologyKeys ?? []);
  }
  return result;
}

function segmentOf(node: V1Node, keys: string[]): Topology | undefined {
  const labels = node.metadata?.labels ?? {};
  const segment: Topology = {};
  for (const key of keys) {
    const value = labels[key];
    if (value === undefined) return undefined;
    segment[key] = value;
  }
  return keys.length > 0 ? segment : undefined;
}

const segmentKey = (segment: Topology): string =>
  JSON.stringify(Object.entries(segment).sort(([a], [b]) => a.localeCompare(b)));

function unique(segments: Topology[]): Topology[] {
  const seen = new Map<string, Topology>();
  for (const segment of segments) seen.set(segmentKey(segment), segment);
  return [...seen.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, s]) => s);
}

/**
 * Where the volume must be accessible (upstream GenerateAccessibilityRequirements, with
 * non-strict and immediate topology): the class's allowed topologies, else every segment
 * of a node running the driver; the selected node's segment comes first among the preferred.
 */
export function accessibilityRequirements(
  input: Pick<ProvisionInput, 'storageClass' | 'selectedNode' | 'csiNodes' | 'nodes' | 'settings'>,
): { requisite: Topology[]; preferred: Topology[] } | ProvisionRefusal {
  const keysByNode = topologyKeysByNode(input.csiNodes, input.settings.driverName);
  let selected: Topology | undefined;
  if (input.selectedNode) {
    const name = input.selectedNode.metadata?.name ?? '';
    const keys = keysByNode.get(name);
    if (!keys) {
      return { message: `CSINode ${name} does not list driver ${input.settings.driverName}` };
    }
    selected = segmentOf(input.selectedNode, keys);
    if (!selected && keys.length > 0) {
      return { message: `topology labels ${keys.join(', ')} are missing from node ${name}` };
    }
  }

  let requisite: Topology[] = [];
  const allowed = input.storageClass.allowedTopologies ?? [];
  if (allowed.length > 0) {
    for (const term of allowed) {
      let combos: Topology[] = [{}];
      for (const expression of term.matchLabelExpressions ?? []) {
        combos = combos.flatMap((combo) =>
          expression.values.map((value) => ({ ...combo, [expression.key]: value })),
        );
      }
      requisite.push(...combos.filter((combo) => Object.keys(combo).length > 0));
    }
  } else {
    const byName = new Map(input.nodes.map((node) => [node.metadata?.name ?? '', node]));
    for (const [nodeName, keys] of keysByNode) {
      const node = byName.get(nodeName);
      const segment = node && segmentOf(node, keys);
      if (segment) requisite.push(segment);
    }
  }
  if (selected && !requisite.some((s) => segmentKey(s) === segmentKey(selected))) {
    requisite.push(selected);
  }
  requisite = unique(requisite);
  const preferred = selected
    ? [selected, ...requisite.filter((s) => segmentKey(s) !== segmentKey(selected))]
    : requisite;
  return { requisite, preferred };
}

/**
 * Resolves a `csi.storage.k8s.io/<kind>-secret-{name,namespace}` pair (upstream
 * getSecretReference) with the placeholders ../api/secret-template.ts allows the kind.
 */
function secretReference(
  kind: SecretKind,
  parameters: Record<string, string>,
  pvName: string,
  pvc: V1PersistentVolumeClaim,
): V1SecretReference | undefined {
  const secretKind = SECRET_PARAMS[kind];
  const keys = secretParameterKeys(secretKind);
  const templates =
    secretTemplates(parameters, keys) ??
    (kind === 'provisioner' ? secretTemplates(parameters, LEGACY_SECRET_KEYS) : undefined);
  if (templates === undefined) return undefined;
  if (templates === 'incomplete' || !templates.name || !templates.namespace) {
    throw new Error(`${keys.name} and ${keys.namespace} must be set together`);
  }
  const values = {
    'pv.name': pvName,
    'pvc.namespace': pvc.metadata?.namespace ?? '',
    'pvc.name': pvc.metadata?.name ?? '',
  };
  const resolve = (field: SecretField) => {
    const resolved = resolveSecretTemplate(secretKind, field, templates[field], values);
    if ('unknown' in resolved) {
      throw new Error(
        `${keys[field]} "${templates[field]}" uses the unknown token \${${resolved.unknown[0]}}`,
      );
    }
    return resolved.value;
  };
  return { namespace: resolve('namespace'), name: resolve('name') };
}

/** What CreateVolume answered. */
export interface CreatedVolume {
  volumeId: string;
  /** 0 when the driver did not say. */
  capacityBytes: number;
  volumeContext: Record<string, string>;
  accessibleTopology: Topology[];
  /** Whether the answer names a content source (required when one was asked for). */
  hasContentSource: boolean;
}

/** Why a created volume cannot be used (it is then deleted and provisioning retried). */
export function checkCreatedVolume(
  call: CreateVolumeCall,
  volume: CreatedVolume,
): string | undefined {
  if (volume.capacityBytes > 0 && volume.capacityBytes < call.requiredBytes) {
    return `created volume capacity ${volume.capacityBytes} less than requested capacity ${call.requiredBytes}`;
  }
  if (call.snapshotId && !volume.hasContentSource) return 'volume content source missing';
  return undefined;
}

/**
 * Whether a failed CreateVolume may still be running in the driver (upstream checkError):
 * after a deadline, a cancelled call, a broken connection or ABORTED (an operation pending for
 * that name) the volume may yet appear, so the call is repeated with the same name until the
 * driver gives a final answer. Any other answer means nothing is being created. An error
 * without a gRPC code failed before reaching the driver's answer; it is treated as running,
 * to be safe.
 */
export function createVolumeOutcome(error: unknown): 'final' | 'in-background' {
  const code = grpcCodeOf(error);
  if (code === undefined) return 'in-background';
  return [
    GrpcStatus.CANCELLED,
    GrpcStatus.DEADLINE_EXCEEDED,
    GrpcStatus.UNAVAILABLE,
    GrpcStatus.ABORTED,
  ].includes(code)
    ? 'in-background'
    : 'final';
}

/** A CreateVolume that has not given a final answer yet, remembered by its PVC's UID. */
export interface InFlightProvisioning {
  /** The PVC's UID. */
  uid: string;
  /** The PVC's `namespace/name`, its work-queue key. */
  claimKey: string;
}

/**
 * The provisionings whose PVC is gone (deleted, being deleted, or replaced by a new PVC of
 * the same name): they are finished with the same CreateVolume and the volume, if any, is
 * deleted, so that no backend volume is left without a PV (upstream keeps provisioning a
 * deleted claim that is "in background" until it gets a final answer).
 */
export function abandonedProvisionings<T extends InFlightProvisioning>(
  inFlight: Iterable<T>,
  claimKey: string,
  pvc: V1PersistentVolumeClaim | undefined,
): T[] {
  const current = pvc?.metadata?.deletionTimestamp ? undefined : pvc?.metadata?.uid;
  return [...inFlight].filter((entry) => entry.claimKey === claimKey && entry.uid !== current);
}

/** Node affinity for a volume's accessible topology: any one segment must match. */
export function nodeAffinityFor(topology: Topology[]): V1VolumeNodeAffinity | undefined {
  const terms: V1NodeSelectorTerm[] = topology
    .filter((segment) => Object.keys(segment).length > 0)
    .map((segment) => ({
      matchExpressions: Object.keys(segment)
        .sort()
        .map((key) => ({ key, operator: 'In', values: [segment[key]!] })),
    }));
  return terms.length > 0 ? { required: { nodeSelectorTerms: terms } } : undefined;
}

/** The PV recording a provisioned volume, bound by claimRef to its PVC. */
export function buildPersistentVolume(
  input: Pick<ProvisionInput, 'pvc' | 'storageClass' | 'settings' | 'capabilities'>,
  plan: ProvisionPlan,
  volume: CreatedVolume,
): V1PersistentVolume {
  const { pvc, storageClass, settings, capabilities } = input;
  const reclaimPolicy = storageClass.reclaimPolicy ?? 'Delete';
  const block = pvc.spec?.volumeMode === 'Block';
  const capacity = volume.capacityBytes > 0 ? volume.capacityBytes : plan.call.requiredBytes;
  const deletionSecret = plan.secretRefs.provisioner;
  const refs = plan.secretRefs;
  const pv: V1PersistentVolume = {
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: {
      name: plan.call.name,
      annotations: {
        [ANN_PROVISIONED_BY]: storageClass.provisioner,
        [ANN_DELETION_SECRET_NAME]: deletionSecret?.name ?? '',
        [ANN_DELETION_SECRET_NAMESPACE]: deletionSecret?.namespace ?? '',
      },
      finalizers: reclaimPolicy === 'Delete' ? [FINALIZER_PV] : undefined,
    },
    spec: {
      accessModes: pvc.spec?.accessModes,
      capacity: { storage: formatBytes(capacity) },
      persistentVolumeReclaimPolicy: reclaimPolicy,
      storageClassName: storageClass.metadata?.name,
      mountOptions: storageClass.mountOptions,
      volumeMode: pvc.spec?.volumeMode,
      claimRef: {
        kind: 'PersistentVolumeClaim',
        apiVersion: 'v1',
        namespace: pvc.metadata?.namespace,
        name: pvc.metadata?.name,
        uid: pvc.metadata?.uid,
        resourceVersion: pvc.metadata?.resourceVersion,
      },
      csi: {
        driver: settings.driverName,
        volumeHandle: volume.volumeId,
        volumeAttributes: {
          [PROVISIONER_IDENTITY_KEY]: settings.identity,
          ...volume.volumeContext,
        },
        fsType: !block && plan.fsType ? plan.fsType : undefined,
        controllerPublishSecretRef: refs.controllerPublish,
        nodeStageSecretRef: refs.nodeStage,
        nodePublishSecretRef: refs.nodePublish,
        controllerExpandSecretRef: refs.controllerExpand,
        nodeExpandSecretRef: refs.nodeExpand,
      },
      nodeAffinity: capabilities.topology ? nodeAffinityFor(volume.accessibleTopology) : undefined,
    },
  };
  return withoutUndefined(pv);
}

/** Whether a PV's volume should be deleted now (library shouldDelete, for our PVs). */
export function shouldDeleteVolume(pv: V1PersistentVolume, driverName: string): boolean {
  if (pv.metadata?.annotations?.[ANN_PROVISIONED_BY] !== driverName) return false;
  if (pv.metadata?.deletionTimestamp && !pv.metadata.finalizers?.includes(FINALIZER_PV))
    return false;
  return pv.status?.phase === 'Released' && pv.spec?.persistentVolumeReclaimPolicy === 'Delete';
}

/**
 * The finalizers a PV of ours should carry (library handleProtectionFinalizer): ours while
 * it is Bound with policy Delete, none with Retain or Recycle. Undefined: no change.
 */
export function pvFinalizers(pv: V1PersistentVolume, driverName: string): string[] | undefined {
  if (pv.metadata?.annotations?.[ANN_PROVISIONED_BY] !== driverName) return undefined;
  const current = pv.metadata.finalizers ?? [];
  const policy = pv.spec?.persistentVolumeReclaimPolicy;
  const has = current.includes(FINALIZER_PV);
  if (
    policy === 'Delete' &&
    !has &&
    !pv.metadata.deletionTimestamp &&
    pv.status?.phase === 'Bound'
  ) {
    return [...current, FINALIZER_PV];
  }
  if ((policy === 'Retain' || policy === 'Recycle') && has) {
    return current.filter((f) => f !== FINALIZER_PV);
  }
  return undefined;
}

function withoutUndefined<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
