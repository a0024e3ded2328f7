/**
 * The wiring of `snapback controller` and `snapback all-in-one`: one Manager (one lease), the
 * policy controllers and the chosen parts of the embedded snapshot stack added to it, each part
 * with its own clients and, by default, idle while its upstream counterpart holds its Lease.
 */
import os from 'node:os';
import { Gauge } from 'prom-client';
import { connectCsi, timedCsiClient, type CsiClient } from '../csi/client.js';
import { discoverDriver, type DriverInfo } from '../csi/discovery.js';
import { resolveCsiProto } from '../csi/proto.js';
import { KubeClients } from '../kube/clients.js';
import type { ClusterAccess } from '../kube/kubeconfig.js';
import {
  DeferToUpstream,
  upstreamLeaseNames,
  type CoexistenceStatus,
} from '../kube/coexistence.js';
import {
  isNotFound,
  Manager,
  VolumeGroupSnapshotClasses,
  type KubeClient,
  type ManagerExit,
  type ManagerLeaderElection,
  type Runnable,
} from '../kube/index.js';
import { startHealthServer, type HealthServer } from '../observability/health.js';
import type { Logger } from '../observability/logger.js';
import { createMetrics, type SnapbackMetrics } from '../observability/metrics.js';
import { addPolicyControllers } from '../policy/controllers.js';
import { createProvisioner } from '../provisioner/provisioner.js';
import type { FeatureGates } from '../provisioner/feature-gates.js';
import { DEFAULT_PROVISIONER_SETTINGS } from '../provisioner/plan.js';
import { createSnapshotController } from '../snapshot/controller/index.js';
import { createGroupSnapshotController } from '../snapshot/group/index.js';
import { createSidecar } from '../snapshot/sidecar/content-sidecar.js';
import {
  GroupContentSidecar,
  supportsGroupSnapshots,
  type GroupSnapshotterCsi,
} from '../snapshot/sidecar/group-content-sidecar.js';
import { DEFAULT_SIDECAR_SETTINGS } from '../snapshot/sidecar/plan.js';

/** Which parts of the control plane this process runs. */
export interface Parts {
  /** BackupPolicy and RestoreJob controllers. */
  policy: boolean;
  snapshotController: boolean;
  snapshotter: boolean;
  provisioner: boolean;
}

export interface StackOptions {
  /** The API server and the credentials (src/kube/kubeconfig.ts). */
  cluster: ClusterAccess;
  /** The --kubeconfig file, if given: pods/exec (hooks) loads it again with client-node. */
  kubeconfigFile?: string;
  parts: Parts;
  /** The CSI driver the sidecar and the provisioner drive; required when either runs. */
  csiEndpoint?: string;
  csiProto?: string;
  /** Without it, every part starts at once (a single replica). */
  leaderElection?: ManagerLeaderElection;
  qps: number;
  burst: number;
  workers: number;
  /** Deadline of each CSI call made while discovering the driver (upstream `--timeout`). */
  timeoutMs: number;
  /** Deadline of each CSI call of the snapshotter (csi-snapshotter's `--timeout`). */
  snapshotterTimeoutMs: number;
  /** Deadline of each CSI call of the provisioner (external-provisioner's `--timeout`). */
  provisionerTimeoutMs: number;
  /** CreateSnapshot names: `<prefix>-<VolumeSnapshot UID>`, the UID cut when length is not -1. */
  snapshotNamePrefix: string;
  snapshotNameUuidLength: number;
  /** PV and CreateVolume names: `<prefix>-<PVC UID>`, the UID cut when length is not -1. */
  volumeNamePrefix: string;
  volumeNameUuidLength: number;
  /** Snapshot controller and provisioner `--prevent-volume-mode-conversion`. */
  preventVolumeModeConversion: boolean;
  /** Keep each embedded part idle while its upstream counterpart holds its Lease. */
  deferToUpstream: boolean;
  /** Where upstream's Leases are looked for; every namespace when absent. */
  upstreamLeaseNamespaces?: string[];
  /** How often upstream's Leases are checked again. */
  upstreamCheckPeriodMs: number;
  /** `--feature-gates`: the provisioner's gates (CrossNamespaceVolumeDataSource). */
  featureGates?: FeatureGates;
  retryIntervalStartMs: number;
  retryIntervalMaxMs: number;
  /** Replays every cached object this often (upstream `--resync-period`). */
  resyncPeriodMs: number;
  extraCreateMetadata: boolean;
  /** host:port serving /healthz, /readyz and /metrics. */
  httpEndpoint?: string;
  /** Let BackupPolicy hooks exec into pods (the chart's hooks.enabled grants pods/exec). */
  hooks?: boolean;
  /** Let RestoreJobs with mode Swap scale workloads and swap PVCs (restore.swap.enabled). */
  restoreSwap?: boolean;
  /** Run BackupPolicy restore drills as Jobs of this image (verify.enabled); none without it. */
  verifyImage?: string;
  logger: Logger;
}

export interface Stack {
  /** Resolves when the stack ends: `stopped` after stop(), `lost` when leadership was lost. */
  readonly exit: Promise<ManagerExit>;
  /** Where /healthz, /readyz and /metrics are served, with --http-endpoint. */
  readonly healthUrl?: string;
  /** Whether each embedded part acts or defers to its upstream counterpart. */
  coexistence(): CoexistenceStatus[];
  stop(): Promise<void>;
}

/** Starts the chosen parts; the returned stack runs until stopped or leadership is lost. */
export async function startStack(options: StackOptions): Promise<Stack> {
  const wiring = wire(options);
  if (options.parts.policy) await addPolicy(wiring);
  if (options.parts.snapshotController) await addSnapshotController(wiring);
  const csi = await addCsiParts(wiring);
  const health = await serveHealth(wiring);
  return run(wiring, health?.url, async () => {
    await health?.close();
    csi?.close();
  });
}

/** What every step of startStack adds its parts with. */
interface Wiring {
  options: StackOptions;
  logger: Logger;
  metrics: SnapbackMetrics;
  manager: Manager;
  clients: KubeClients;
  /** The gates of the parts that defer to their upstream counterpart. */
  deferred: DeferToUpstream[];
  deferredGauge: Gauge<'part' | 'upstream'>;
}

/** The manager, the metrics and the clients every part shares. */
function wire(options: StackOptions): Wiring {
  const { logger } = options;
  const clients = new KubeClients({
    cluster: options.cluster,
    ...(options.kubeconfigFile ? { kubeconfigFile: options.kubeconfigFile } : {}),
    qps: options.qps,
    burst: options.burst,
    host: options.leaderElection?.identity ?? os.hostname(),
    logger,
  });
  // the writes of each embedded part get the rate limits its upstream counterpart has; the
  // caches, the lease and the policy layer share the manager's client
  const metrics = createMetrics();
  const manager = new Manager({
    client: clients.http('snapback-controller'),
    leaderElection: options.leaderElection,
    informers: { resyncPeriodMs: options.resyncPeriodMs },
    logger,
  });
  metrics.observeQueueDepths(() => manager.queueDepths());
  const deferredGauge = new Gauge({
    name: 'snapback_embedded_part_deferred',
    help: '1 while an embedded part does not act because its upstream counterpart holds its Lease',
    labelNames: ['part', 'upstream'] as const,
    registers: [metrics.registry],
  });
  return { options, logger, metrics, manager, clients, deferred: [], deferredGauge };
}

async function addPolicy({ options, manager, clients, metrics, logger }: Wiring): Promise<void> {
  addPolicyControllers(manager, {
    groupSnapshots: await policyGroupSnapshots(manager.client, logger),
    events: clients.recorder('snapback-policy-controller', manager.client),
    metrics,
    workers: options.workers,
    logger,
    ...(options.hooks ? { hookExecutor: clients.podExecutor() } : {}),
    restoreSwap: options.restoreSwap ?? false,
    ...(options.verifyImage ? { verifyImage: options.verifyImage } : {}),
  });
}

/**
 * Whether the policy controllers can read VolumeGroupSnapshots: the API is served and may be
 * listed. Without, RestoreJobs that need a group fail saying so; the rest works as before.
 */
async function policyGroupSnapshots(client: KubeClient, logger: Logger): Promise<boolean> {
  try {
    return await groupSnapshotApiServed(client);
  } catch (error) {
    logger.warn('cannot read groupsnapshot.storage.k8s.io/v1; RestoreJobs restore no groups', {
      error: (error as Error).message,
    });
    return false;
  }
}

/** One embedded part and the upstream component it stands in for. */
interface PartSpec {
  part: string;
  upstream: string;
  /** The Lease upstream's component holds while it runs. */
  leaseName: string;
  /** The user agent, and so the field manager, of the part's writes. */
  fieldManager: string;
}

/** Adds one part, with its own clients, unless upstream's counterpart runs it. */
function addPart(wiring: Wiring, spec: PartSpec, create: (writer: KubeClient) => Runnable): void {
  // every write of a part is fenced by the lease: refused from the moment it is lost
  const writer = wiring.manager.fence(wiring.clients.perApiFamily(spec.fieldManager));
  wiring.manager.add(unlessUpstream(wiring, spec, () => create(writer)));
}

/** The part as is, or (by default) idle while upstream's counterpart holds its Lease. */
function unlessUpstream(wiring: Wiring, spec: PartSpec, create: () => Runnable): Runnable {
  const { options, deferredGauge } = wiring;
  if (!options.deferToUpstream) return create();
  const labels = { part: spec.part, upstream: spec.upstream };
  deferredGauge.set(labels, 0);
  const gate = new DeferToUpstream({
    part: spec.part,
    upstream: spec.upstream,
    leaseName: spec.leaseName,
    namespaces: options.upstreamLeaseNamespaces,
    client: wiring.manager.client,
    create,
    periodMs: options.upstreamCheckPeriodMs,
    onStatus: (status) => deferredGauge.set(labels, status.state === 'deferring' ? 1 : 0),
    logger: wiring.logger,
  });
  wiring.deferred.push(gate);
  return gate;
}

/** How every part's work queue runs. */
function queueOptions({ options, logger }: Wiring) {
  return {
    workers: options.workers,
    retryIntervalStartMs: options.retryIntervalStartMs,
    retryIntervalMaxMs: options.retryIntervalMaxMs,
    logger,
  };
}

/**
 * The snapshot controller, and its group paths when the cluster serves
 * groupsnapshot.storage.k8s.io/v1 (as upstream's, which runs both under one lease).
 */
async function addSnapshotController(wiring: Wiring): Promise<void> {
  const spec = {
    part: 'snapshot-controller',
    upstream: 'snapshot-controller',
    leaseName: upstreamLeaseNames.snapshotController(),
    fieldManager: 'snapback-snapshot-controller',
  };
  const groups = await groupSnapshotApiServed(wiring.manager.client);
  if (!groups) {
    wiring.logger.warn(
      'the cluster does not serve groupsnapshot.storage.k8s.io/v1 (install the CRDs of crds/); ' +
        'VolumeGroupSnapshots are not handled',
    );
  }
  addPart(wiring, spec, (writer) => {
    const common = {
      client: writer,
      informers: wiring.manager.informers,
      recorder: wiring.clients.recorder('snapshot-controller', writer),
      ...queueOptions(wiring),
    };
    const single = createSnapshotController({
      ...common,
      settings: { preventVolumeModeConversion: wiring.options.preventVolumeModeConversion },
    });
    return groups ? together(single, createGroupSnapshotController(common)) : single;
  });
}

/** Runnables started and stopped as one (one lease gate, one upstream check). */
function together(first: Runnable, ...rest: Runnable[]): Runnable {
  const all = [first, ...rest];
  return {
    name: first.name,
    get queueDepth() {
      return all.reduce((sum, r) => sum + (r.queueDepth ?? 0), 0);
    },
    start: async (signal) => {
      await Promise.all(all.map((r) => r.start(signal)));
    },
    stop: async () => {
      await Promise.all(all.map((r) => r.stop()));
    },
  };
}

/** Whether the API server serves VolumeGroupSnapshotClasses (the group snapshot CRDs exist). */
async function groupSnapshotApiServed(client: KubeClient): Promise<boolean> {
  try {
    await client.list(VolumeGroupSnapshotClasses, { limit: 1 });
    return true;
  } catch (error) {
    if (isNotFound(error)) return false;
    throw error;
  }
}

/** The CSI driver's controller service as the parts call it. */
type ControllerService = ReturnType<typeof timedCsiClient<CsiClient['controller']>>;

/**
 * Finds the CSI driver and adds the snapshotter and the provisioner that drive it; the
 * connection to close at the end, when either runs.
 */
async function addCsiParts(wiring: Wiring): Promise<CsiClient | undefined> {
  const { options, logger, manager, metrics } = wiring;
  if (!options.parts.snapshotter && !options.parts.provisioner) return undefined;
  if (!options.csiEndpoint) {
    throw new Error(
      '--csi-address is required for the CSI snapshotter and provisioner (or switch them off ' +
        'with --csi-snapshotter=false --csi-provisioner=false)',
    );
  }
  const csi = connectCsi(options.csiEndpoint, { protoPath: resolveCsiProto(options.csiProto) });
  const driver = await discoverDriver(csi, options.timeoutMs, logger);
  logger.info('CSI driver found', { driver: driver.name, endpoint: options.csiEndpoint });
  // CSI calls are cancelled when the lease is lost, as upstream's sidecars exit then
  const controllerService = manager.fenceCalls(
    timedCsiClient(csi.controller, driver.name, metrics.csiOperationDuration),
  );
  if (options.parts.snapshotter) {
    addSnapshotter(
      wiring,
      driver,
      controllerService,
      await groupSnapshotterCsi(wiring, driver, csi),
    );
  }
  if (options.parts.provisioner) addProvisioner(wiring, driver, controllerService);
  return csi;
}

/**
 * The driver's GroupController as the group paths of the snapshotter call it, when the cluster
 * serves the group API and the driver offers CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT.
 */
async function groupSnapshotterCsi(
  wiring: Wiring,
  driver: DriverInfo,
  csi: CsiClient,
): Promise<GroupSnapshotterCsi | undefined> {
  const { options, manager, metrics, logger } = wiring;
  if (!(await groupSnapshotApiServed(manager.client))) return undefined;
  if (!(await supportsGroupSnapshots(csi.groupController, options.timeoutMs))) {
    logger.info('the CSI driver does not take group snapshots', { driver: driver.name });
    return undefined;
  }
  return manager.fenceCalls(
    timedCsiClient(csi.groupController, driver.name, metrics.csiOperationDuration),
  );
}

function addSnapshotter(
  wiring: Wiring,
  driver: DriverInfo,
  csi: ControllerService,
  groupCsi?: GroupSnapshotterCsi,
): void {
  const { options } = wiring;
  if (!driver.capabilities.createDeleteSnapshot) {
    throw new Error(
      `CSI driver ${driver.name} does not report CREATE_DELETE_SNAPSHOT; run without the ` +
        'snapshotter (--csi-snapshotter=false)',
    );
  }
  const spec = {
    part: 'csi-snapshotter',
    upstream: 'csi-snapshotter',
    leaseName: upstreamLeaseNames.snapshotter(driver.name),
    fieldManager: 'snapback-csi-snapshotter',
  };
  addPart(wiring, spec, (writer) => {
    const recorder = wiring.clients.recorder(`csi-snapshotter ${driver.name}`, writer);
    const single = createSidecar({
      client: writer,
      informers: wiring.manager.informers,
      csi,
      listSnapshots: driver.listSnapshots,
      events: recorder,
      settings: {
        ...DEFAULT_SIDECAR_SETTINGS,
        driverName: driver.name,
        namePrefix: options.snapshotNamePrefix,
        nameUuidLength: options.snapshotNameUuidLength,
        extraCreateMetadata: options.extraCreateMetadata,
      },
      timeoutMs: options.snapshotterTimeoutMs,
      ...queueOptions(wiring),
    });
    if (!groupCsi) return single;
    const group = new GroupContentSidecar({
      client: writer,
      informers: wiring.manager.informers,
      csi: groupCsi,
      recorder,
      driverName: driver.name,
      extraCreateMetadata: options.extraCreateMetadata,
      timeoutMs: options.snapshotterTimeoutMs,
      ...queueOptions(wiring),
    });
    return together(single, group);
  });
}

function addProvisioner(wiring: Wiring, driver: DriverInfo, csi: ControllerService): void {
  const { options } = wiring;
  const spec = {
    part: 'csi-provisioner',
    upstream: 'external-provisioner',
    leaseName: upstreamLeaseNames.provisioner(driver.name),
    fieldManager: 'snapback-csi-provisioner',
  };
  addPart(wiring, spec, (writer) =>
    createProvisioner({
      client: writer,
      informers: wiring.manager.informers,
      csi,
      capabilities: driver.capabilities,
      events: wiring.clients.recorder('external-provisioner', writer),
      settings: {
        ...DEFAULT_PROVISIONER_SETTINGS,
        driverName: driver.name,
        identity: `${Date.now()}-${Math.floor(Math.random() * 10_000)}-${driver.name}`,
        volumeNamePrefix: options.volumeNamePrefix,
        volumeNameUuidLength: options.volumeNameUuidLength,
        extraCreateMetadata: options.extraCreateMetadata,
        preventVolumeModeConversion: options.preventVolumeModeConversion,
        crossNamespaceVolumeDataSource:
          options.featureGates?.CrossNamespaceVolumeDataSource ?? false,
      },
      timeoutMs: options.provisionerTimeoutMs,
      ...queueOptions(wiring),
    }),
  );
}

/** /healthz, /readyz and /metrics, with --http-endpoint. */
async function serveHealth({ options, metrics, deferred, logger }: Wiring) {
  if (!options.httpEndpoint) return undefined;
  const health: HealthServer = await startHealthServer({
    address: options.httpEndpoint,
    registry: metrics.registry,
    // always ready (a deferring part is a healthy standby); the line says what it does
    readiness: deferred.map((gate) => ({
      name: `upstream-${gate.name}`,
      check: () => ({ ready: true, message: gate.status.message }),
    })),
    logger,
  });
  logger.info('serving health checks', { url: health.url });
  return health;
}

/** Runs the manager; stop() waits for it to end, then closes the CSI connection and health. */
function run(
  { manager, deferred }: Wiring,
  healthUrl: string | undefined,
  close: () => Promise<void>,
): Stack {
  const exit = manager.run();
  let stopping: Promise<void> | undefined;
  return {
    exit,
    healthUrl,
    coexistence: () => deferred.map((gate) => gate.status),
    stop() {
      stopping ??= (async () => {
        await manager.stop();
        await exit;
        await close();
      })();
      return stopping;
    },
  };
}
