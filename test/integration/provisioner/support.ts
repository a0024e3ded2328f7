/**
 * What the provisioner's integration tests share: a CSI driver served by the test itself over
 * a unix socket (its CreateVolume can be made slower than the provisioner's deadline), and the
 * embedded provisioner run in this process against the real control plane, driving that socket
 * through the real gRPC client.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import type { V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { connectCsi, type CsiClient } from '../../../src/csi/client.js';
import { toGrpcHandlers } from '../../../src/csi/handlers.js';
import { loadCsi } from '../../../src/csi/proto.js';
import { serveCsi, type CsiServer } from '../../../src/csi/server.js';
import type { ControllerHandlers } from '../../../src/gen/csi/csi/v1/Controller.js';
import type { CreateVolumeRequest__Output } from '../../../src/gen/csi/csi/v1/CreateVolumeRequest.js';
import type { CreateVolumeResponse } from '../../../src/gen/csi/csi/v1/CreateVolumeResponse.js';
import type { IdentityHandlers } from '../../../src/gen/csi/csi/v1/Identity.js';
import {
  HttpKubeClient,
  KubeEventRecorder,
  Manager,
  StorageClasses,
  type KubeClient,
  type KubeObject,
} from '../../../src/kube/index.js';
import { createProvisioner } from '../../../src/provisioner/provisioner.js';
import {
  DEFAULT_PROVISIONER_SETTINGS,
  type DriverCapabilities,
} from '../../../src/provisioner/plan.js';
import type { ControlPlane } from '../../support/control-plane.js';
import { isAlive, sleep, startProcess, stopProcess, waitFor } from '../../support/processes.js';
import { tool } from '../../support/tools.js';

/**
 * A CSI Identity + Controller whose "backend" is a set of volume ids. CreateVolume is
 * idempotent by name, as CSI requires; `delays` makes the next calls take that long each
 * before answering (the volume exists from the moment the request is accepted, as with a slow
 * cloud API).
 */
export class TestDriver {
  readonly creates: CreateVolumeRequest__Output[] = [];
  readonly deletes: string[] = [];
  readonly volumes = new Set<string>();
  delays: number[] = [];
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-prov-'));
  readonly socket = path.join(this.dir, 'csi.sock');
  private server?: CsiServer;

  constructor(readonly name: string) {}

  async start(): Promise<void> {
    const csi = loadCsi(tool('CSI_PROTO')).csi.v1;
    const ignore = () => undefined;
    const identity = toGrpcHandlers<IdentityHandlers>(
      'Identity',
      csi.Identity.service,
      {
        GetPluginInfo: async () => ({ name: this.name, vendor_version: 'test' }),
        GetPluginCapabilities: async () => ({
          capabilities: [{ service: { type: 'CONTROLLER_SERVICE' } }],
        }),
        Probe: async () => ({ ready: { value: true } }),
      },
      ignore,
    );
    const controller = toGrpcHandlers<ControllerHandlers>(
      'Controller',
      csi.Controller.service,
      {
        CreateVolume: async (request) => this.createVolume(request),
        DeleteVolume: async (request) => {
          this.deletes.push(request.volume_id);
          this.volumes.delete(request.volume_id);
          return {};
        },
      },
      ignore,
    );
    this.server = await serveCsi({
      endpoint: `unix://${this.socket}`,
      protoPath: tool('CSI_PROTO'),
      handlers: { identity, controller },
    });
  }

  private async createVolume(request: CreateVolumeRequest__Output): Promise<CreateVolumeResponse> {
    this.creates.push(request);
    const delay = this.delays.shift() ?? 0;
    const id = `vol-${request.name}`;
    this.volumes.add(id);
    if (delay > 0) await sleep(delay);
    return {
      volume: {
        volume_id: id,
        capacity_bytes: request.capacity_range?.required_bytes ?? '0',
        volume_context: {},
        content_source: request.volume_content_source ?? undefined,
      },
    };
  }

  async stop(): Promise<void> {
    await this.server?.stop(1_000);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface RunningProvisioner {
  stop(): Promise<void>;
}

/** The embedded provisioner for `driver`, with a short CSI deadline and fast retries. */
export function runProvisioner(options: {
  client: KubeClient;
  driver: TestDriver;
  timeoutMs: number;
  capabilities?: Partial<DriverCapabilities>;
  crossNamespaceVolumeDataSource?: boolean;
}): RunningProvisioner {
  const csi: CsiClient = connectCsi(`unix://${options.driver.socket}`, {
    protoPath: tool('CSI_PROTO'),
  });
  const events = new KubeEventRecorder({
    client: options.client,
    component: 'external-provisioner',
  });
  const manager = new Manager({ client: options.client });
  manager.add(
    createProvisioner({
      client: manager.client,
      informers: manager.informers,
      csi: csi.controller,
      capabilities: {
        createDeleteVolume: true,
        createDeleteSnapshot: true,
        topology: false,
        singleNodeMultiWriter: false,
        ...options.capabilities,
      },
      events,
      settings: {
        ...DEFAULT_PROVISIONER_SETTINGS,
        driverName: options.driver.name,
        identity: `test-${options.driver.name}`,
        crossNamespaceVolumeDataSource: options.crossNamespaceVolumeDataSource ?? false,
      },
      timeoutMs: options.timeoutMs,
      workers: 2,
      retryIntervalStartMs: 200,
      retryIntervalMaxMs: 1_000,
    }),
  );
  const running = manager.run();
  return {
    async stop() {
      await manager.stop();
      await running;
      await events.flush();
      csi.close();
    },
  };
}

/** A StorageClass of `driver`, Immediate binding, reclaim policy Delete. */
export function storageClassFor(name: string, driver: string): KubeObject {
  return {
    apiVersion: 'storage.k8s.io/v1',
    kind: 'StorageClass',
    metadata: { name },
    provisioner: driver,
    reclaimPolicy: 'Delete',
    volumeBindingMode: 'Immediate',
  } as KubeObject;
}

/** A 1Gi ReadWriteOnce PVC of `className`. */
export function claimOf(
  name: string,
  namespace: string,
  className: string,
  spec: Record<string, unknown> = {},
): V1PersistentVolumeClaim & KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: className,
      resources: { requests: { storage: '1Gi' } },
      ...spec,
    },
  } as unknown as V1PersistentVolumeClaim & KubeObject;
}

export interface GatedApiServer {
  kubeConfig: k8s.KubeConfig;
  stop(): Promise<void>;
}

/**
 * A second kube-apiserver of the same control plane (same etcd, tokens and service-account
 * key) with extra feature gates. The shared control plane runs with the defaults, under which
 * the API server drops fields of alpha features from what it stores, such as
 * `spec.dataSourceRef.namespace` (CrossNamespaceVolumeDataSource).
 */
export async function startGatedApiServer(
  controlPlane: ControlPlane,
  featureGates: string,
): Promise<GatedApiServer> {
  const [binary, ...args] = readFileSync(
    `/proc/${controlPlane.state.pids.apiserver}/cmdline`,
    'utf8',
  )
    .split('\0')
    .filter((arg) => arg !== '');
  if (!binary?.endsWith('kube-apiserver')) {
    throw new Error(
      `PID ${controlPlane.state.pids.apiserver} is not the control plane's kube-apiserver`,
    );
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'snapback-gated-apiserver-'));
  const port = await freePort();
  const replaced: Record<string, string> = {
    '--secure-port': String(port),
    '--cert-dir': path.join(dir, 'certs'),
  };
  const gatedArgs = args.map((arg, i) => replaced[args[i - 1] ?? ''] ?? arg);
  gatedArgs.push(
    `--feature-gates=${featureGates}`,
    // the shared API server keeps the kubernetes Service's endpoints; this one leaves them
    '--endpoint-reconciler-type=none',
  );
  const logFile = path.join(dir, 'kube-apiserver.log');
  const child = startProcess(binary, gatedArgs, { logFile, owned: true });
  const kubeConfig = new k8s.KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'gated', server: `https://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'admin', token: controlPlane.state.token }],
    contexts: [{ name: 'gated', cluster: 'gated', user: 'admin' }],
    currentContext: 'gated',
  });
  const stop = async () => {
    await stopProcess(child.pid!, 10_000);
    rmSync(dir, { recursive: true, force: true });
  };
  const probe = new HttpKubeClient(kubeConfig);
  try {
    await waitFor(
      async () => {
        if (!isAlive(child.pid!)) throw new Error('the gated kube-apiserver exited');
        return probe.list(StorageClasses).then(
          () => true,
          () => false,
        );
      },
      120_000,
      'the gated kube-apiserver to serve',
      () => (existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-3000) : ''),
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { kubeConfig, stop };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
}
