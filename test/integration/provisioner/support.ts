/**
 * What the provisioner's integration tests share: a CSI driver served by the test itself over
 * a unix socket (its CreateVolume can be made slower than the provisioner's deadline), and the
 * embedded provisioner run in this process against the real control plane, driving that socket
 * through the real gRPC client.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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
  KubeEventRecorder,
  Manager,
  type KubeClient,
  type KubeObject,
} from '../../../src/kube/index.js';
import { createProvisioner } from '../../../src/provisioner/controller.js';
import {
  DEFAULT_PROVISIONER_SETTINGS,
  type DriverCapabilities,
} from '../../../src/provisioner/plan.js';
import { sleep } from '../../support/processes.js';
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
