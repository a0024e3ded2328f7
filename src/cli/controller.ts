/**
 * `snapback controller`: the controllers of one snapback deployment, leader-elected as one
 * unit. The embedded snapshot stack (snapshot controller, CSI snapshotter, CSI provisioner)
 * runs beside them unless switched off; the sidecar and the provisioner drive the CSI driver
 * at --csi-address. `snapback all-in-one` (./all-in-one.ts) adds the driver itself.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import * as k8s from '@kubernetes/client-node';
import { connectCsi, timedCsiClient, type CallOptions, type CsiClient } from '../csi/client.js';
import type { ControllerGetCapabilitiesRequest } from '../gen/csi/csi/v1/ControllerGetCapabilitiesRequest.js';
import type { ControllerGetCapabilitiesResponse__Output } from '../gen/csi/csi/v1/ControllerGetCapabilitiesResponse.js';
import type { GetPluginCapabilitiesRequest } from '../gen/csi/csi/v1/GetPluginCapabilitiesRequest.js';
import type { GetPluginCapabilitiesResponse__Output } from '../gen/csi/csi/v1/GetPluginCapabilitiesResponse.js';
import type { GetPluginInfoRequest } from '../gen/csi/csi/v1/GetPluginInfoRequest.js';
import type { GetPluginInfoResponse__Output } from '../gen/csi/csi/v1/GetPluginInfoResponse.js';
import type { ProbeRequest } from '../gen/csi/csi/v1/ProbeRequest.js';
import type { ProbeResponse__Output } from '../gen/csi/csi/v1/ProbeResponse.js';
import { resolveCsiProto } from '../csi/proto.js';
import { SNAPSHOT_GROUP } from '../api/snapshot.js';
import {
  HttpKubeClient,
  KubeEventRecorder,
  Manager,
  type KubeClient,
  type ManagerExit,
  type ManagerLeaderElection,
  type ResourceType,
  type Runnable,
} from '../kube/index.js';
import { startHealthServer, type HealthServer } from '../observability/health.js';
import { createLogger, errorMessage, type Logger } from '../observability/logger.js';
import { createMetrics } from '../observability/metrics.js';
import { addPolicyControllers } from '../policy/controllers.js';
import { WebSocketPodExecutor } from '../kube/exec.js';
import { createProvisioner } from '../provisioner/controller.js';
import { createSnapshotController } from '../snapshot/controller/index.js';
import { DEFAULT_PROVISIONER_SETTINGS, type DriverCapabilities } from '../provisioner/plan.js';
import { parseFeatureGates, type FeatureGates } from '../provisioner/feature-gates.js';
import { createSidecar } from '../snapshot/sidecar/controller.js';
import { DEFAULT_SIDECAR_SETTINGS } from '../snapshot/sidecar/plan.js';
import { Gauge } from 'prom-client';
import {
  DeferToUpstream,
  upstreamLeaseNames,
  type CoexistenceStatus,
} from '../kube/coexistence.js';
import { parseGoBool } from '../util/bool.js';
import { parseDuration } from '../util/duration.js';
import { parseFlags } from './driver.js';

/** Which parts of the control plane this process runs. */
export interface Parts {
  /** BackupPolicy and RestoreJob controllers. */
  policy: boolean;
  snapshotController: boolean;
  snapshotter: boolean;
  provisioner: boolean;
}

export interface StackOptions {
  kubeConfig: k8s.KubeConfig;
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

/** What the driver said about itself at startup, as upstream's sidecars ask it. */
export interface DriverInfo {
  name: string;
  capabilities: DriverCapabilities;
  listSnapshots: boolean;
}

/** The calls driver discovery makes (a CsiClient provides them). */
export interface DiscoveryCsi {
  identity: {
    probe(request: ProbeRequest, options?: CallOptions): Promise<ProbeResponse__Output>;
    getPluginInfo(
      request: GetPluginInfoRequest,
      options?: CallOptions,
    ): Promise<GetPluginInfoResponse__Output>;
    getPluginCapabilities(
      request: GetPluginCapabilitiesRequest,
      options?: CallOptions,
    ): Promise<GetPluginCapabilitiesResponse__Output>;
  };
  controller: {
    controllerGetCapabilities(
      request: ControllerGetCapabilitiesRequest,
      options?: CallOptions,
    ): Promise<ControllerGetCapabilitiesResponse__Output>;
  };
  waitForReady(timeoutMs: number): Promise<void>;
}

/**
 * Waits for the driver (Probe until ready, as csi-lib-utils' ProbeForever), then reads its
 * name and capabilities.
 */
export async function discoverDriver(
  csi: DiscoveryCsi,
  timeoutMs: number,
  logger: Logger,
): Promise<DriverInfo> {
  const deadline = Date.now() + Math.max(timeoutMs, 60_000);
  for (;;) {
    try {
      await csi.waitForReady(Math.min(timeoutMs, 10_000));
      const probe = await csi.identity.probe({}, { timeoutMs });
      if (probe.ready?.value !== false) break;
      logger.info('CSI driver not ready yet');
    } catch (error) {
      if (Date.now() > deadline) {
        throw new Error(`the CSI driver did not answer Probe: ${errorMessage(error)}`, {
          cause: error,
        });
      }
      logger.info('waiting for the CSI driver', { error: errorMessage(error) });
    }
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
  const info = await csi.identity.getPluginInfo({}, { timeoutMs });
  const plugin = await csi.identity.getPluginCapabilities({}, { timeoutMs });
  const pluginCaps = new Set(plugin.capabilities.map((c) => c.service?.type));
  const controller = await csi.controller.controllerGetCapabilities({}, { timeoutMs });
  const caps = new Set(controller.capabilities.map((c) => c.rpc?.type));
  return {
    name: info.name,
    listSnapshots: caps.has('LIST_SNAPSHOTS'),
    capabilities: {
      createDeleteVolume: pluginCaps.has('CONTROLLER_SERVICE') && caps.has('CREATE_DELETE_VOLUME'),
      createDeleteSnapshot: caps.has('CREATE_DELETE_SNAPSHOT'),
      topology: pluginCaps.has('VOLUME_ACCESSIBILITY_CONSTRAINTS'),
      singleNodeMultiWriter: caps.has('SINGLE_NODE_MULTI_WRITER'),
    },
  };
}

/**
 * A client that sends snapshot.storage.k8s.io requests through one client and everything else
 * (PVCs, PVs, Events, Secrets) through another. Upstream's snapshot-controller and
 * csi-snapshotter hold one clientset per API family, each with its own --kube-api-qps and
 * --kube-api-burst; this gives our parts the same budget for the same settings.
 */
export function clientPerApiFamily(core: KubeClient, snapshots: KubeClient): KubeClient {
  const pick = (type: ResourceType): KubeClient =>
    type.group === SNAPSHOT_GROUP ? snapshots : core;
  return {
    get: (type, name, namespace) => pick(type).get(type, name, namespace),
    list: (type, options) => pick(type).list(type, options),
    create: (type, obj, options) => pick(type).create(type, obj, options),
    replace: (type, obj, options) => pick(type).replace(type, obj, options),
    patch: (type, name, namespace, patchType, patch, options) =>
      pick(type).patch(type, name, namespace, patchType, patch, options),
    delete: (type, name, namespace, options) => pick(type).delete(type, name, namespace, options),
    watch: (type, options, onEvent, onDone) => pick(type).watch(type, options, onEvent, onDone),
  };
}

/** Starts the chosen parts; the returned stack runs until stopped or leadership is lost. */
export async function startStack(options: StackOptions): Promise<Stack> {
  const { logger, parts } = options;
  const httpClient = (userAgent: string) =>
    new HttpKubeClient(options.kubeConfig, {
      qps: options.qps,
      burst: options.burst,
      userAgent,
    });
  // the writes of each embedded part get the rate limits its upstream counterpart has; the
  // caches, the lease and the policy layer share the manager's client
  const metrics = createMetrics();
  const manager = new Manager({
    client: httpClient('snapback-controller'),
    leaderElection: options.leaderElection,
    informers: { resyncPeriodMs: options.resyncPeriodMs },
    logger,
  });
  // every write of a part is fenced by the lease: refused from the moment it is lost
  const clientFor = (userAgent: string) =>
    manager.fence(clientPerApiFamily(httpClient(userAgent), httpClient(userAgent)));
  metrics.observeQueueDepths(() => manager.queueDepths());
  const host = options.leaderElection?.identity ?? os.hostname();
  const recorder = (component: string, writer: KubeClient = manager.client) =>
    new KubeEventRecorder({ client: writer, component, host, logger });

  if (parts.policy) {
    addPolicyControllers(manager, {
      events: recorder('snapback-policy-controller'),
      metrics,
      workers: options.workers,
      logger,
      ...(options.hooks ? { hookExecutor: new WebSocketPodExecutor(options.kubeConfig) } : {}),
    });
  }
  const deferred: DeferToUpstream[] = [];
  const deferredGauge = new Gauge({
    name: 'snapback_embedded_part_deferred',
    help: '1 while an embedded part does not act because its upstream counterpart holds its Lease',
    labelNames: ['part', 'upstream'] as const,
    registers: [metrics.registry],
  });
  /** The part as is, or (by default) idle while upstream's `upstream` holds `leaseName`. */
  const unlessUpstream = (
    part: string,
    upstream: string,
    leaseName: string,
    create: () => Runnable,
  ): Runnable => {
    if (!options.deferToUpstream) return create();
    deferredGauge.set({ part, upstream }, 0);
    const gate = new DeferToUpstream({
      part,
      upstream,
      leaseName,
      namespaces: options.upstreamLeaseNamespaces,
      client: manager.client,
      create,
      periodMs: options.upstreamCheckPeriodMs,
      onStatus: (status) =>
        deferredGauge.set({ part, upstream }, status.state === 'deferring' ? 1 : 0),
      logger,
    });
    deferred.push(gate);
    return gate;
  };
  /** Adds one part, writing as `fieldManager`, unless upstream's `upstream` runs it. */
  const addPart = (
    part: string,
    upstream: string,
    leaseName: string,
    fieldManager: string,
    create: (writer: KubeClient) => Runnable,
  ): void => {
    const writer = clientFor(fieldManager);
    manager.add(unlessUpstream(part, upstream, leaseName, () => create(writer)));
  };
  /** How every part's work queue runs. */
  const queueOptions = {
    workers: options.workers,
    retryIntervalStartMs: options.retryIntervalStartMs,
    retryIntervalMaxMs: options.retryIntervalMaxMs,
    logger,
  };

  if (parts.snapshotController) {
    addPart(
      'snapshot-controller',
      'snapshot-controller',
      upstreamLeaseNames.snapshotController(),
      'snapback-snapshot-controller',
      (writer) =>
        createSnapshotController({
          client: writer,
          informers: manager.informers,
          recorder: recorder('snapshot-controller', writer),
          settings: { preventVolumeModeConversion: options.preventVolumeModeConversion },
          ...queueOptions,
        }),
    );
  }

  let csi: CsiClient | undefined;
  if (parts.snapshotter || parts.provisioner) {
    if (!options.csiEndpoint) {
      throw new Error(
        '--csi-address is required for the CSI snapshotter and provisioner (or switch them off ' +
          'with --csi-snapshotter=false --csi-provisioner=false)',
      );
    }
    csi = connectCsi(options.csiEndpoint, { protoPath: resolveCsiProto(options.csiProto) });
    const driver = await discoverDriver(csi, options.timeoutMs, logger);
    logger.info('CSI driver found', { driver: driver.name, endpoint: options.csiEndpoint });
    // CSI calls are cancelled when the lease is lost, as upstream's sidecars exit then
    const controllerService = manager.fenceCalls(
      timedCsiClient(csi.controller, driver.name, metrics.csiOperationDuration),
    );
    if (parts.snapshotter) {
      if (!driver.capabilities.createDeleteSnapshot) {
        throw new Error(
          `CSI driver ${driver.name} does not report CREATE_DELETE_SNAPSHOT; run without the ` +
            'snapshotter (--csi-snapshotter=false)',
        );
      }
      addPart(
        'csi-snapshotter',
        'csi-snapshotter',
        upstreamLeaseNames.snapshotter(driver.name),
        'snapback-csi-snapshotter',
        (writer) =>
          createSidecar({
            client: writer,
            informers: manager.informers,
            csi: controllerService,
            listSnapshots: driver.listSnapshots,
            events: recorder(`csi-snapshotter ${driver.name}`, writer),
            settings: {
              ...DEFAULT_SIDECAR_SETTINGS,
              driverName: driver.name,
              snapshotNamePrefix: options.snapshotNamePrefix,
              snapshotNameUuidLength: options.snapshotNameUuidLength,
              extraCreateMetadata: options.extraCreateMetadata,
            },
            timeoutMs: options.snapshotterTimeoutMs,
            ...queueOptions,
          }),
      );
    }
    if (parts.provisioner) {
      addPart(
        'csi-provisioner',
        'external-provisioner',
        upstreamLeaseNames.provisioner(driver.name),
        'snapback-csi-provisioner',
        (writer) =>
          createProvisioner({
            client: writer,
            informers: manager.informers,
            csi: controllerService,
            capabilities: driver.capabilities,
            events: recorder('external-provisioner', writer),
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
            ...queueOptions,
          }),
      );
    }
  }

  let health: HealthServer | undefined;
  if (options.httpEndpoint) {
    health = await startHealthServer({
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
  }

  const exit = manager.run();
  let stopping: Promise<void> | undefined;
  return {
    exit,
    healthUrl: health?.url,
    coexistence: () => deferred.map((gate) => gate.status),
    stop() {
      stopping ??= (async () => {
        await manager.stop();
        await exit;
        await health?.close();
        csi?.close();
      })();
      return stopping;
    },
  };
}

const flagHelp: Record<string, string> = {
  kubeconfig: 'kubeconfig file (default: $KUBECONFIG, else in-cluster)',
  'csi-address': 'CSI driver socket for the snapshotter and provisioner, unix:///path/csi.sock',
  policy: 'run the BackupPolicy and RestoreJob controllers (default true)',
  'snapshot-controller': 'run the embedded snapshot controller (default true)',
  'csi-snapshotter': 'run the embedded CSI snapshotter (default: true with --csi-address)',
  'csi-provisioner': 'run the embedded CSI provisioner (default: true with --csi-address)',
  'leader-election': 'elect one active replica through a Lease (default true)',
  'leader-election-namespace': 'namespace of the Lease (default: $POD_NAMESPACE, else default)',
  'leader-election-name': 'name of the Lease (default snapback-controller)',
  'leader-election-identity': "this replica's identity (default: hostname_<random>)",
  'leader-election-lease-duration': 'lease duration (default 15s)',
  'leader-election-renew-deadline': 'renew deadline (default 10s)',
  'leader-election-retry-period': 'retry period (default 2s)',
  'kube-api-qps': 'client-side request rate to the API server, per part (default 50)',
  'kube-api-burst': 'client-side burst, per part (default 100)',
  'worker-threads': 'concurrent reconciles per controller (default 10)',
  timeout:
    'deadline of CSI calls while finding the driver, and the default of both part timeouts (default 1m)',
  'csi-snapshotter-timeout': "deadline of each of the snapshotter's CSI calls (default 1m)",
  'csi-provisioner-timeout': "deadline of each of the provisioner's CSI calls (default 10s)",
  'snapshot-name-prefix':
    'CreateSnapshot names are <prefix>-<VolumeSnapshot UID> (default snapshot)',
  'snapshot-name-uuid-length':
    'cut that UID, dashes removed, to this many characters (1-32); -1 keeps it (default -1)',
  'volume-name-prefix': 'PV and CreateVolume names are <prefix>-<PVC UID> (default pvc)',
  'volume-name-uuid-length':
    'cut that UID, dashes removed, to this many characters (1-32); -1 keeps it (default -1)',
  'defer-to-upstream':
    "keep each embedded part idle while upstream's counterpart holds its Lease (default true)",
  'upstream-lease-namespaces':
    "comma-separated namespaces where upstream's Leases are looked for (default: all)",
  'upstream-check-period': "how often upstream's Leases are checked again (default 30s)",
  'prevent-volume-mode-conversion':
    'refuse restores into another volumeMode unless the content allows it (default true)',
  'feature-gates':
    'provisioner gates, Name=true|false,...: CrossNamespaceVolumeDataSource (default false)',
  'retry-interval-start': 'first retry delay after a failure (default 1s)',
  'retry-interval-max': 'longest retry delay (default 5m)',
  'resync-period': 'how often every cached object is reconciled again (default 15m)',
  'extra-create-metadata': 'pass object names to CreateSnapshot/CreateVolume (default false)',
  'http-endpoint': 'host:port serving /healthz, /readyz and /metrics (default: none)',
  hooks: 'run BackupPolicy hooks by exec in the pods of snapshotted PVCs (default false)',
  'csi-proto': 'path of csi.proto (default: $SNAPBACK_CSI_PROTO, else dist/csi.proto)',
};

export function stackUsage(
  command: string,
  extra: Record<string, string> = {},
  omit: string[] = [],
): string {
  const lines = [`usage: snapback ${command} [flags]`, ''];
  for (const [name, help] of Object.entries({ ...extra, ...flagHelp })) {
    if (omit.includes(name)) continue;
    lines.push(`  --${name.padEnd(32)} ${help}`);
  }
  return lines.join('\n');
}

/** A boolean flag, read as Go's flag package reads one (strconv.ParseBool). */
function parseBoolean(flags: Record<string, string>, name: string, fallback: boolean): boolean {
  const value = flags[name];
  if (value === undefined) return fallback;
  const parsed = parseGoBool(value);
  if (parsed === undefined) throw new Error(`--${name} takes true or false (got "${value}")`);
  return parsed;
}

/** A UID without its dashes has 32 characters. */
const UUID_CHARACTERS = 32;

/** `--*-name-uuid-length`: -1 (the whole UID, dashes kept) or 1 to 32 characters. */
function parseUuidLength(flags: Record<string, string>, name: string): number {
  const value = flags[name];
  if (value === undefined) return -1;
  const length = Number(value);
  if (
    value.trim() === '' ||
    !Number.isInteger(length) ||
    (length !== -1 && (length < 1 || length > UUID_CHARACTERS))
  ) {
    throw new Error(
      `--${name} takes -1 (the whole UID) or a length from 1 to ${UUID_CHARACTERS} (got "${value}")`,
    );
  }
  return length;
}

/** A DNS-1123 label, as a namespace name must be. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** A comma-separated list of namespaces; absent means every namespace. */
function parseNamespaces(flags: Record<string, string>, name: string): string[] | undefined {
  const value = flags[name];
  if (value === undefined) return undefined;
  const namespaces = value
    .split(',')
    .map((ns) => ns.trim())
    .filter((ns) => ns !== '');
  const bad = namespaces.filter((ns) => !DNS_LABEL.test(ns) || ns.length > 63);
  if (namespaces.length === 0 || bad.length > 0) {
    throw new Error(
      `--${name} takes comma-separated namespace names (got "${value}"` +
        `${bad.length > 0 ? `; not a namespace: ${bad.join(', ')}` : ''}); omit it to look in every namespace`,
    );
  }
  return namespaces;
}

/** A DNS-1123 subdomain, as the name of a PersistentVolume must be. */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

function parseNamePrefix(
  flags: Record<string, string>,
  name: string,
  fallback: string,
  objectName?: string,
): string {
  const prefix = flags[name] ?? fallback;
  if (prefix === '') throw new Error(`--${name} cannot be empty`);
  if (objectName && (!DNS_SUBDOMAIN.test(prefix) || prefix.length > 253 - 37)) {
    throw new Error(
      `--${name} "${prefix}" would make invalid ${objectName} names: use lower-case letters, ` +
        'digits, "-" and "." (starting and ending with a letter or digit), at most 216 characters',
    );
  }
  return prefix;
}

function parseNumber(flags: Record<string, string>, name: string, fallback: number): number {
  const value = flags[name];
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0) {
    throw new Error(`--${name} takes a positive number (got "${value}")`);
  }
  return number;
}

/**
 * StackOptions from flags. `defaults` lets `all-in-one` point the CSI parts at its own driver.
 * Unknown flags are an error naming the known ones.
 */
export function stackOptions(
  flags: Record<string, string>,
  defaults: { csiEndpoint?: string; extraFlags?: string[] },
  logger: Logger,
  env: NodeJS.ProcessEnv = process.env,
): StackOptions {
  const known = new Set([...Object.keys(flagHelp), ...(defaults.extraFlags ?? [])]);
  for (const name of Object.keys(flags)) {
    if (!known.has(name)) {
      throw new Error(`unknown flag --${name} (known: --${[...known].join(', --')})`);
    }
  }
  const csiEndpoint = flags['csi-address'] ?? defaults.csiEndpoint;
  const parts: Parts = {
    policy: parseBoolean(flags, 'policy', true),
    snapshotController: parseBoolean(flags, 'snapshot-controller', true),
    snapshotter: parseBoolean(flags, 'csi-snapshotter', csiEndpoint !== undefined),
    provisioner: parseBoolean(flags, 'csi-provisioner', csiEndpoint !== undefined),
  };
  const kubeConfig = new k8s.KubeConfig();
  if (flags.kubeconfig) kubeConfig.loadFromFile(flags.kubeconfig);
  else kubeConfig.loadFromDefault();

  const duration = (name: string, fallback: string) => parseDuration(flags[name] ?? fallback, name);
  const deadline = (name: string, fallback: string) => {
    const ms = duration(name, fallback);
    if (ms <= 0)
      throw new Error(`--${name} must be longer than 0 (got "${flags[name] ?? fallback}")`);
    return ms;
  };
  let leaderElection: ManagerLeaderElection | undefined;
  if (parseBoolean(flags, 'leader-election', true)) {
    leaderElection = {
      namespace: flags['leader-election-namespace'] ?? env.POD_NAMESPACE ?? 'default',
      name: flags['leader-election-name'] ?? 'snapback-controller',
      identity: flags['leader-election-identity'] ?? `${os.hostname()}_${randomUUID()}`,
      leaseDurationMs: duration('leader-election-lease-duration', '15s'),
      renewDeadlineMs: duration('leader-election-renew-deadline', '10s'),
      retryPeriodMs: duration('leader-election-retry-period', '2s'),
      releaseOnCancel: true,
    };
  }
  return {
    kubeConfig,
    parts,
    csiEndpoint,
    csiProto: flags['csi-proto'],
    leaderElection,
    qps: parseNumber(flags, 'kube-api-qps', 50),
    burst: parseNumber(flags, 'kube-api-burst', 100),
    workers: parseNumber(flags, 'worker-threads', 10),
    timeoutMs: deadline('timeout', '1m'),
    // upstream's defaults (1m and 10s), unless --timeout sets both
    snapshotterTimeoutMs: deadline('csi-snapshotter-timeout', flags.timeout ?? '1m'),
    provisionerTimeoutMs: deadline('csi-provisioner-timeout', flags.timeout ?? '10s'),
    snapshotNamePrefix: parseNamePrefix(flags, 'snapshot-name-prefix', 'snapshot'),
    snapshotNameUuidLength: parseUuidLength(flags, 'snapshot-name-uuid-length'),
    volumeNamePrefix: parseNamePrefix(flags, 'volume-name-prefix', 'pvc', 'PersistentVolume'),
    volumeNameUuidLength: parseUuidLength(flags, 'volume-name-uuid-length'),
    preventVolumeModeConversion: parseBoolean(flags, 'prevent-volume-mode-conversion', true),
    deferToUpstream: parseBoolean(flags, 'defer-to-upstream', true),
    upstreamLeaseNamespaces: parseNamespaces(flags, 'upstream-lease-namespaces'),
    upstreamCheckPeriodMs: deadline('upstream-check-period', '30s'),
    featureGates: parseFeatureGates(flags['feature-gates']),
    retryIntervalStartMs: duration('retry-interval-start', '1s'),
    retryIntervalMaxMs: duration('retry-interval-max', '5m'),
    resyncPeriodMs: duration('resync-period', '15m'),
    extraCreateMetadata: parseBoolean(flags, 'extra-create-metadata', false),
    httpEndpoint: flags['http-endpoint'],
    hooks: parseBoolean(flags, 'hooks', false),
    logger,
  };
}

/**
 * Runs until SIGTERM/SIGINT (exit 0, after the reconciles in flight finish and the lease is
 * handed over) or until leadership is lost (exit 1, so the pod restarts as a candidate).
 */
export async function runUntilSignal(
  stack: { exit: Promise<ManagerExit>; stop(): Promise<void> },
  logger: Logger,
  cleanup: () => Promise<void> = async () => undefined,
): Promise<number> {
  const signal = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  const outcome = await Promise.race([
    signal.then((name) => ({ signal: name })),
    stack.exit.then((exit) => ({ exit })),
  ]);
  if ('signal' in outcome) logger.info('stopping on signal', { signal: outcome.signal });
  else logger.error('leadership lost; exiting so that a new candidate takes over');
  await stack.stop();
  await cleanup();
  return 'signal' in outcome ? 0 : 1;
}

export const controllerCommand = {
  async run(args: string[]): Promise<number> {
    if (args.includes('--help') || args.includes('-h')) {
      console.log(stackUsage('controller'));
      return 0;
    }
    const logger = createLogger({ controller: 'snapback' });
    const options = stackOptions(parseFlags(args), {}, logger);
    const stack = await startStack(options);
    logger.info('snapback controller started', {
      parts: Object.entries(options.parts)
        .filter(([, on]) => on)
        .map(([part]) => part)
        .join(','),
      leaderElection: options.leaderElection?.identity ?? 'off',
    });
    return runUntilSignal(stack, logger);
  },
};
