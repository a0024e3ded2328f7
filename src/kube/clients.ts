/**
 * The clients a process of snapback talks to the API server with: one rate-limited
 * HttpKubeClient per user agent and API family, the Event recorders and the pod executor.
 * Upstream's snapshot-controller and csi-snapshotter hold one clientset per API family, each
 * with its own --kube-api-qps and --kube-api-burst; `clientPerApiFamily` gives our parts the
 * same budget for the same settings.
 */
import { SNAPSHOT_GROUP } from '../api/snapshot.js';
import type { KubeClient } from './client.js';
import { KubeEventRecorder } from './events.js';
import { WebSocketPodExecutor, type PodExecutor } from './exec.js';
import { HttpKubeClient } from './http-client.js';
import type { ClusterAccess } from './kubeconfig.js';
import type { ResourceType } from './resource.js';
import type { Logger } from '../observability/logger.js';

/**
 * A client that sends snapshot.storage.k8s.io requests through one client and everything else
 * (PVCs, PVs, Events, Secrets) through another.
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

export interface KubeClientsOptions {
  cluster: ClusterAccess;
  /** The kubeconfig file the pod executor loads (client-node's, on its first exec); default as kubectl. */
  kubeconfigFile?: string;
  /** Client-side rate limit of each client (upstream `--kube-api-qps`, `--kube-api-burst`). */
  qps: number;
  burst: number;
  /** The `source.host` of the Events this process records. */
  host: string;
  logger: Logger;
}

/** Makes the clients of one process, all with the same cluster, rate limits and host. */
export class KubeClients {
  constructor(private readonly options: KubeClientsOptions) {}

  /** One rate-limited client, sending `userAgent` (the field manager of its writes). */
  http(userAgent: string): HttpKubeClient {
    return new HttpKubeClient(this.options.cluster, {
      qps: this.options.qps,
      burst: this.options.burst,
      userAgent,
    });
  }

  /** A client per API family for one part, each with the rate limits of `http`. */
  perApiFamily(userAgent: string): KubeClient {
    return clientPerApiFamily(this.http(userAgent), this.http(userAgent));
  }

  /** Records Events as `component` through `writer`. */
  recorder(component: string, writer: KubeClient): KubeEventRecorder {
    return new KubeEventRecorder({
      client: writer,
      component,
      host: this.options.host,
      logger: this.options.logger,
    });
  }

  /** Runs commands in pods (BackupPolicy hooks), over the API server's exec WebSocket. */
  podExecutor(): PodExecutor {
    return new WebSocketPodExecutor(
      this.options.kubeconfigFile ? { kubeconfigFile: this.options.kubeconfigFile } : {},
    );
  }
}
