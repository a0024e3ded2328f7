/**
 * The CSI provisioner: provisions PVCs of StorageClasses whose provisioner is our driver
 * (CreateVolume, then a PV bound to the claim by claimRef; kube-controller-manager completes the
 * binding) and deletes the volumes of released PVs with reclaim policy Delete. It carries out
 * ./plan.ts; every decision lives there.
 */
import type {
  V1CSINode,
  V1Node,
  V1PersistentVolume,
  V1PersistentVolumeClaim,
  V1StorageClass,
} from '@kubernetes/client-node';
import {
  VOLUME_SNAPSHOT_KIND,
  type VolumeSnapshot,
  type VolumeSnapshotContent,
} from '../api/snapshot.js';
import type { CallOptions } from '../csi/client.js';
import type { CreateVolumeRequest } from '../gen/csi/csi/v1/CreateVolumeRequest.js';
import type { CreateVolumeResponse__Output } from '../gen/csi/csi/v1/CreateVolumeResponse.js';
import type { DeleteVolumeRequest } from '../gen/csi/csi/v1/DeleteVolumeRequest.js';
import type { VolumeCapability } from '../gen/csi/csi/v1/VolumeCapability.js';
import {
  Controller,
  ItemExponentialRateLimiter,
  Nodes,
  PersistentVolumeClaims,
  PersistentVolumes,
  readSecretData,
  StorageClasses,
  addFinalizer,
  createIfAbsent,
  isNotFound,
  removeFinalizer,
  splitKey,
  type EventRecorder,
  type Informer,
  type InformerFactory,
  type KubeClient,
  type KubeObject,
  type ReconcileResult,
  type ResourceType,
  type Runnable,
} from '../kube/index.js';
import { errorMessage, silentLogger, type Logger } from '../observability/logger.js';
import { messageOf } from '../csi/status.js';
import { VolumeSnapshotContents, VolumeSnapshots } from '../kube/resource.js';
import {
  ANN_DELETION_SECRET_NAME,
  ANN_DELETION_SECRET_NAMESPACE,
  ANN_STORAGE_PROVISIONER,
  FINALIZER_PV,
  FINALIZER_SNAPSHOT_SOURCE,
  REASON_PROVISIONING,
  REASON_PROVISIONING_FAILED,
  REASON_PROVISIONING_SUCCEEDED,
  REASON_VOLUME_FAILED_DELETE,
  ANN_SELECTED_NODE,
  abandonedProvisionings,
  buildPersistentVolume,
  checkCreatedVolume,
  createVolumeOutcome,
  crossNamespaceRefusal,
  dataSourceOf,
  isRefusal,
  planProvision,
  pvFinalizers,
  shouldDeleteVolume,
  shouldProvision,
  volumeName,
  type CreateVolumeCall,
  type CreatedVolume,
  type DriverCapabilities,
  type InFlightProvisioning,
  type ProvisionInput,
  type ProvisionerSettings,
} from './plan.js';
import { ReferenceGrants, type ReferenceGrant } from './reference-grant.js';

export const CSINodes: ResourceType = {
  group: 'storage.k8s.io',
  version: 'v1',
  plural: 'csinodes',
  kind: 'CSINode',
  namespaced: false,
};

/** The CSI Controller calls the provisioner makes (a CsiClient's `controller` provides them). */
export interface ProvisionerCsi {
  createVolume(
    request: CreateVolumeRequest,
    options?: CallOptions,
  ): Promise<CreateVolumeResponse__Output>;
  deleteVolume(request: DeleteVolumeRequest, options?: CallOptions): Promise<unknown>;
}

export interface ProvisionerOptions {
  client: KubeClient;
  informers: InformerFactory;
  csi: ProvisionerCsi;
  capabilities: DriverCapabilities;
  events: EventRecorder;
  settings: ProvisionerSettings;
  /** `--timeout`: the deadline of each CSI call. */
  timeoutMs?: number;
  /** `--worker-threads`. */
  workers?: number;
  /** Retry backoff of failed claims and volumes. */
  retryIntervalStartMs?: number;
  retryIntervalMaxMs?: number;
  logger?: Logger;
}

/** A CreateVolume without a final answer yet: what is needed to repeat it if its PVC goes. */
interface PendingCreate extends InFlightProvisioning {
  request: CreateVolumeRequest;
  protectSnapshot?: { namespace: string; name: string };
  /**
   * For a class with reclaimPolicy Retain: the PV that records the volume. A volume finished
   * after its PVC was deleted is then kept, as a Released PV, not deleted.
   */
  retainedPv?: (volume: CreatedVolume) => V1PersistentVolume;
}

/** The claim and volume controllers, started and stopped together. */
export function createProvisioner(options: ProvisionerOptions): Runnable {
  const provisioner = new Provisioner(options);
  return {
    start: async () => {
      await Promise.all([provisioner.claims.start(), provisioner.volumes.start()]);
    },
    stop: async () => {
      await Promise.all([provisioner.claims.stop(), provisioner.volumes.stop()]);
    },
    name: 'csi-provisioner',
    get queueDepth() {
      return provisioner.claims.queueDepth + provisioner.volumes.queueDepth;
    },
  };
}

class Provisioner {
  readonly claims: Controller;
  readonly volumes: Controller;
  private readonly options: ProvisionerOptions;
  private readonly logger: Logger;
  private readonly timeoutMs: number;
  private readonly pvcs: Informer<V1PersistentVolumeClaim & KubeObject>;
  private readonly pvs: Informer<V1PersistentVolume & KubeObject>;
  private readonly classes: Informer<V1StorageClass & KubeObject>;
  private readonly nodes?: Informer<V1Node & KubeObject>;
  private readonly csiNodes?: Informer<V1CSINode & KubeObject>;
  /** By PVC UID: CreateVolume calls that timed out or are running, until a final answer. */
  private readonly inFlight = new Map<string, PendingCreate>();

  constructor(options: ProvisionerOptions) {
    this.options = options;
    this.logger = (options.logger ?? silentLogger()).child({ controller: 'csi-provisioner' });
    this.timeoutMs = options.timeoutMs ?? 60_000;
    const { informers } = options;
    this.pvcs = informers.informer(PersistentVolumeClaims);
    this.pvs = informers.informer(PersistentVolumes);
    this.classes = informers.informer(StorageClasses);
    if (options.capabilities.topology) {
      this.nodes = informers.informer(Nodes);
      this.csiNodes = informers.informer(CSINodes);
    }
    const controller = (name: string, reconcile: (key: string) => Promise<ReconcileResult>) =>
      new Controller({
        name,
        reconcile,
        workers: options.workers ?? 10,
        rateLimiter: new ItemExponentialRateLimiter(
          options.retryIntervalStartMs ?? 1_000,
          options.retryIntervalMaxMs ?? 300_000,
        ),
        logger: options.logger,
      });
    this.claims = controller('csi-provisioner-claims', (key) => this.reconcileClaim(key));
    this.volumes = controller('csi-provisioner-volumes', (key) => this.reconcileVolume(key));
    this.claims.watch(this.pvcs);
    this.volumes.watch(this.pvs);
  }

  private get driverName(): string {
    return this.options.settings.driverName;
  }

  private async reconcileClaim(key: string): Promise<ReconcileResult> {
    const pvc = this.pvcs.getByKey(key);
    await this.finishAbandoned(key, pvc);
    if (!pvc) return;
    const className = pvc.spec?.storageClassName;
    const storageClass = className ? this.classes.get(className) : undefined;
    const annotated =
      pvc.metadata?.annotations?.[ANN_STORAGE_PROVISIONER] === this.driverName &&
      !pvc.spec?.volumeName;
    const decision = shouldProvision(pvc, storageClass, this.driverName);
    if (!decision.provision) {
      // the class may appear later: retry then, as upstream does for a missing class
      if (annotated && !storageClass) throw new Error(`storageClass "${className}" not found`);
      return;
    }
    const pvName = volumeName(pvc.metadata?.uid, this.options.settings);
    const uid = pvc.metadata!.uid!;
    if (this.pvs.get(pvName)) {
      this.inFlight.delete(uid);
      return;
    }

    const log = this.logger.child({ namespace: pvc.metadata?.namespace, name: pvc.metadata?.name });
    const claimKey = `${pvc.metadata?.namespace}/${pvc.metadata?.name}`;
    const failed = (message: string) => {
      const full = `failed to provision volume with StorageClass "${className}": ${message}`;
      this.events.event(claimOf(pvc), 'Warning', REASON_PROVISIONING_FAILED, full);
      return new Error(full);
    };
    this.events.event(
      claimOf(pvc),
      'Normal',
      REASON_PROVISIONING,
      `External provisioner is provisioning volume for claim "${claimKey}"`,
    );

    let input: ProvisionInput;
    try {
      input = await this.inputFor(pvc, storageClass!);
    } catch (error) {
      throw failed(messageOf(error));
    }
    const plan = planProvision(input);
    if (isRefusal(plan)) {
      if (plan.ignore) {
        log.info('claim left to another component', { reason: plan.message });
        return;
      }
      throw failed(plan.message);
    }
    if (plan.protectSnapshot && input.snapshot) {
      await addFinalizer(
        this.options.client,
        VolumeSnapshots,
        input.snapshot,
        FINALIZER_SNAPSHOT_SOURCE,
      );
    }

    const secrets = await this.readSecret(
      plan.call.secretRef?.name,
      plan.call.secretRef?.namespace,
    );
    const request = createVolumeRequest(plan.call, secrets);
    this.inFlight.set(uid, {
      uid,
      claimKey: key,
      request,
      protectSnapshot: plan.protectSnapshot,
      ...(storageClass!.reclaimPolicy === 'Retain' && {
        retainedPv: (volume: CreatedVolume) => buildPersistentVolume(input, plan, volume),
      }),
    });
    let response: CreateVolumeResponse__Output;
    try {
      response = await this.options.csi.createVolume(request, { timeoutMs: this.timeoutMs });
    } catch (error) {
      if (createVolumeOutcome(error) === 'final') this.inFlight.delete(uid);
      throw failed(messageOf(error));
    }
    const volume = createdVolume(response);
    const unusable = checkCreatedVolume(plan.call, volume);
    if (unusable) {
      try {
        await this.options.csi.deleteVolume(
          { volume_id: volume.volumeId, secrets },
          { timeoutMs: this.timeoutMs },
        );
      } catch (error) {
        // kept in flight: if the PVC goes, the volume is still deleted
        throw failed(
          `${unusable}. Cleanup of volume ${pvName} failed, volume is orphaned: ${messageOf(error)}`,
        );
      }
      this.inFlight.delete(uid);
      throw failed(unusable);
    }

    const pv = buildPersistentVolume(input, plan, volume);
    await createIfAbsent(this.options.client, PersistentVolumes, pv as KubeObject);
    this.inFlight.delete(uid);
    this.events.event(
      claimOf(pvc),
      'Normal',
      REASON_PROVISIONING_SUCCEEDED,
      `Successfully provisioned volume ${pvName}`,
    );
    log.info('volume provisioned', { volume: pvName, handle: volume.volumeId });
    if (plan.protectSnapshot) await this.releaseSnapshot(plan.protectSnapshot, log);
  }

  /**
   * Finishes the provisionings of `key` whose PVC is gone: repeats their CreateVolume (same
   * name, so the driver answers for the volume it may have made) until it gives a final
   * answer, then deletes the volume it returns. Throws, to be retried with backoff, while the
   * driver still has not answered or the deletion fails.
   */
  private async finishAbandoned(
    key: string,
    pvc: V1PersistentVolumeClaim | undefined,
  ): Promise<void> {
    for (const entry of abandonedProvisionings(this.inFlight.values(), key, pvc)) {
      const name = entry.request.name ?? '';
      const log = this.logger.child({ ...splitKey(key), uid: entry.uid, volume: name });
      // read, not cached: a PV just created for this volume must not be missed
      if (await this.options.client.get(PersistentVolumes, name)) {
        // a PV records the volume: its reclaim policy decides, as for any released PV
        this.inFlight.delete(entry.uid);
        continue;
      }
      const gone = `PVC ${key} (uid ${entry.uid}) was deleted while volume ${name} was being provisioned`;
      let response: CreateVolumeResponse__Output;
      try {
        response = await this.options.csi.createVolume(entry.request, {
          timeoutMs: this.timeoutMs,
        });
      } catch (error) {
        if (createVolumeOutcome(error) === 'in-background') {
          throw new Error(
            `${gone}; repeating CreateVolume until the driver answers: ${messageOf(error)}`,
            { cause: error },
          );
        }
        this.inFlight.delete(entry.uid);
        log.info('provisioning of a deleted PVC ended without a volume', {
          error: messageOf(error),
        });
        continue;
      }
      const handle = response.volume?.volume_id;
      if (handle && entry.retainedPv) {
        // Retain: the volume outlives its claim; a PV bound to the deleted claim shows it
        // Released, for the admin to reuse or delete, as upstream's provisioner leaves it
        await createIfAbsent(
          this.options.client,
          PersistentVolumes,
          entry.retainedPv(createdVolume(response)) as KubeObject,
        );
        this.inFlight.delete(entry.uid);
        log.info('kept the volume of a PVC deleted while it was being provisioned (Retain)', {
          handle,
        });
        if (entry.protectSnapshot) await this.releaseSnapshot(entry.protectSnapshot, log);
        continue;
      }
      if (handle) {
        try {
          await this.options.csi.deleteVolume(
            { volume_id: handle, secrets: entry.request.secrets },
            { timeoutMs: this.timeoutMs },
          );
        } catch (error) {
          throw new Error(`${gone}; deleting volume ${handle}: ${messageOf(error)}`, {
            cause: error,
          });
        }
      }
      this.inFlight.delete(entry.uid);
      log.info('deleted the volume of a PVC deleted while it was being provisioned', { handle });
      if (entry.protectSnapshot) await this.releaseSnapshot(entry.protectSnapshot, log);
    }
  }

  /** Reads what the plan needs beyond the claim and its class. */
  private async inputFor(
    pvc: V1PersistentVolumeClaim,
    storageClass: V1StorageClass,
  ): Promise<ProvisionInput> {
    const input: ProvisionInput = {
      pvc,
      storageClass,
      settings: this.options.settings,
      capabilities: this.options.capabilities,
      csiNodes: this.csiNodes?.list() ?? [],
      nodes: this.nodes?.list() ?? [],
    };
    const source = dataSourceOf(pvc);
    if (
      source &&
      this.options.settings.crossNamespaceVolumeDataSource &&
      source.namespace !== pvc.metadata?.namespace
    ) {
      input.referenceGrants = await this.referenceGrants(source.namespace);
    }
    // a source the PVC may not use is not read
    if (source?.kind === VOLUME_SNAPSHOT_KIND && !crossNamespaceRefusal(input)) {
      // read, not cached: restores are rare, and the provisioner then needs no snapshot watch
      input.snapshot = await this.options.client.get<VolumeSnapshot>(
        VolumeSnapshots,
        source.name,
        source.namespace,
      );
      const contentName = input.snapshot?.status?.boundVolumeSnapshotContentName;
      if (contentName) {
        input.content = await this.options.client.get<VolumeSnapshotContent>(
          VolumeSnapshotContents,
          contentName,
        );
      }
    }
    const selected = pvc.metadata?.annotations?.[ANN_SELECTED_NODE];
    if (selected) {
      input.selectedNode =
        this.nodes?.get(selected) ??
        (await this.options.client.get<V1Node & KubeObject>(Nodes, selected));
    }
    return input;
  }

  /** Read, not watched: the CRD may be installed after the controller started, or never. */
  private async referenceGrants(namespace: string): Promise<ReferenceGrant[] | 'not-served'> {
    try {
      return (await this.options.client.list<ReferenceGrant>(ReferenceGrants, { namespace })).items;
    } catch (error) {
      if (isNotFound(error)) return 'not-served';
      // e.g. forbidden: the controller's role lacks list on referencegrants
      throw new Error(
        `error getting ReferenceGrants in ${namespace} namespace from api server: ${messageOf(error)}`,
        { cause: error },
      );
    }
  }

  private async releaseSnapshot(
    ref: { namespace: string; name: string },
    log: Logger,
  ): Promise<void> {
    try {
      const snapshot = await this.options.client.get<VolumeSnapshot>(
        VolumeSnapshots,
        ref.name,
        ref.namespace,
      );
      if (snapshot) {
        await removeFinalizer(
          this.options.client,
          VolumeSnapshots,
          snapshot,
          FINALIZER_SNAPSHOT_SOURCE,
        );
      }
    } catch (error) {
      // the next provisioning of this claim is a no-op; a later sync of the snapshot cleans up
      log.warn('could not remove the restore finalizer from the snapshot', {
        snapshot: `${ref.namespace}/${ref.name}`,
        error: errorMessage(error),
      });
    }
  }

  private async reconcileVolume(key: string): Promise<ReconcileResult> {
    let pv = this.pvs.getByKey(key);
    if (!pv) return;
    const finalizers = pvFinalizers(pv, this.driverName);
    if (finalizers) {
      pv = await this.options.client.patch<V1PersistentVolume & KubeObject>(
        PersistentVolumes,
        key,
        undefined,
        'merge',
        { metadata: { resourceVersion: pv.metadata?.resourceVersion, finalizers } },
      );
    }
    if (!shouldDeleteVolume(pv, this.driverName)) return;

    const handle = pv.spec?.csi?.volumeHandle;
    if (!handle) {
      this.events.event(pv as KubeObject, 'Warning', REASON_VOLUME_FAILED_DELETE, 'invalid CSI PV');
      throw new Error(`PV ${key} has no CSI volume handle`);
    }
    const annotations = pv.metadata?.annotations ?? {};
    const secrets = await this.readSecret(
      annotations[ANN_DELETION_SECRET_NAME],
      annotations[ANN_DELETION_SECRET_NAMESPACE],
    ).catch(() => ({}));
    try {
      await this.options.csi.deleteVolume(
        { volume_id: handle, secrets },
        { timeoutMs: this.timeoutMs },
      );
    } catch (error) {
      const message = messageOf(error);
      this.events.event(pv as KubeObject, 'Warning', REASON_VOLUME_FAILED_DELETE, message);
      throw new Error(`deleting volume ${handle} of PV ${key}: ${message}`, { cause: error });
    }
    await this.options.client.delete(PersistentVolumes, key).catch((error: unknown) => {
      if (!isNotFound(error)) throw error;
    });
    const deleted = await this.options.client.get<V1PersistentVolume & KubeObject>(
      PersistentVolumes,
      key,
    );
    if (deleted)
      await removeFinalizer(this.options.client, PersistentVolumes, deleted, FINALIZER_PV);
    this.logger.info('volume deleted', { name: key, handle });
  }

  private get events(): EventRecorder {
    return this.options.events;
  }

  private async readSecret(
    name: string | undefined,
    namespace: string | undefined,
  ): Promise<Record<string, string>> {
    if (!name || !namespace) return {};
    const data = await readSecretData(this.options.client, name, namespace);
    if (!data) throw new Error(`secret ${namespace}/${name} not found`);
    return data;
  }
}

function claimOf(pvc: V1PersistentVolumeClaim): KubeObject {
  return { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: pvc.metadata } as KubeObject;
}

function createVolumeRequest(
  call: CreateVolumeCall,
  secrets: Record<string, string>,
): CreateVolumeRequest {
  const capabilities: VolumeCapability[] = call.capabilities.map((capability) =>
    'block' in capability.accessType
      ? { block: {}, access_mode: { mode: capability.accessMode } }
      : {
          mount: {
            fs_type: capability.accessType.mount.fsType,
            mount_flags: capability.accessType.mount.mountFlags,
          },
          access_mode: { mode: capability.accessMode },
        },
  );
  const request: CreateVolumeRequest = {
    name: call.name,
    capacity_range: { required_bytes: String(call.requiredBytes), limit_bytes: '0' },
    volume_capabilities: capabilities,
    parameters: call.parameters,
    secrets,
  };
  if (call.snapshotId)
    request.volume_content_source = { snapshot: { snapshot_id: call.snapshotId } };
  if (call.accessibility) {
    request.accessibility_requirements = {
      requisite: call.accessibility.requisite.map((segments) => ({ segments })),
      preferred: call.accessibility.preferred.map((segments) => ({ segments })),
    };
  }
  return request;
}

function createdVolume(response: CreateVolumeResponse__Output): CreatedVolume {
  const volume = response.volume;
  if (!volume?.volume_id) throw new Error('CreateVolume returned no volume id');
  return {
    volumeId: volume.volume_id,
    capacityBytes: Number(volume.capacity_bytes ?? 0),
    volumeContext: volume.volume_context ?? {},
    accessibleTopology: (volume.accessible_topology ?? []).map((t) => t.segments ?? {}),
    hasContentSource: !!volume.content_source,
  };
}
