/**
 * The I/O of a restore drill for the BackupPolicy controller: reading its Job, pod, the pod's
 * Events and scratch PVCs live, creating what the plan (verify.ts) asks for and deleting the
 * drill's own objects only: each is read first and deleted only when it carries the drill's
 * labels and a name status.verification records.
 */
import type { Verification } from '../api/index.js';
import { LABEL_VERIFY } from '../api/index.js';
import type { KubeClient, KubeObject, ResourceType } from '../kube/index.js';
import { Events, isAlreadyExists, isNotFound, PersistentVolumeClaims } from '../kube/index.js';
import type { Logger } from '../observability/logger.js';
import { Pods, type Pod } from './hooks.js';
import { labelValue } from './naming.js';
import type { Pvc } from './objects.js';
import { FIELD_MANAGER } from './policy-controller.js';
import type { VerifyPlan } from './verify.js';
import {
  Jobs,
  LABEL_JOB_NAME,
  type DrillObjects,
  type Job,
  type PodEvent,
} from './verify-objects.js';

export interface DrillRun {
  namespace: string;
  /** The policy. */
  name: string;
  log: Logger;
}

function isScratchOf(obj: KubeObject | undefined, policy: string): boolean {
  return obj?.metadata?.labels?.[LABEL_VERIFY] === labelValue(policy);
}

/** The drill's objects as the API server has them now. */
export async function observeDrill(
  client: KubeClient,
  run: DrillRun,
  verification: Verification,
): Promise<DrillObjects> {
  const { namespace, name } = run;
  const job = await client.get<Job>(Jobs, verification.job, namespace);
  const ours = isScratchOf(job, name) ? job : undefined;
  const pods = ours
    ? (
        await client.list<Pod>(Pods, {
          namespace,
          labelSelector: `${LABEL_JOB_NAME}=${verification.job}`,
        })
      ).items
    : [];
  const events: PodEvent[] = [];
  for (const pod of pods) events.push(...(await eventsOf(client, 'Pod', pod)));
  const pvcs: string[] = [];
  const pvcEvents: PodEvent[] = [];
  for (const pvc of verification.pvcs) {
    const scratch = await client.get<Pvc>(PersistentVolumeClaims, pvc, namespace);
    if (!isScratchOf(scratch, name)) continue;
    pvcs.push(pvc);
    if (scratch!.status?.phase !== 'Bound')
      pvcEvents.push(...(await eventsOf(client, 'PersistentVolumeClaim', scratch!)));
  }
  return { ...(ours ? { job: ours } : {}), pods, events, pvcEvents, pvcs };
}

/** The Events about one object (a drill's pod or scratch PVC; list items carry no kind). */
async function eventsOf(
  client: KubeClient,
  kind: 'Pod' | 'PersistentVolumeClaim',
  { metadata }: KubeObject,
): Promise<PodEvent[]> {
  const list = await client.list<PodEvent>(Events, {
    namespace: metadata!.namespace!,
    fieldSelector: `involvedObject.kind=${kind},involvedObject.name=${metadata!.name}`,
  });
  return list.items;
}

/** Creates the scratch PVCs, then the Job; one that exists already is left as it is. */
export async function createScratch(
  client: KubeClient,
  create: VerifyPlan['create'],
): Promise<void> {
  const objects: Array<[ResourceType, KubeObject]> = [
    ...create.pvcs.map((pvc): [ResourceType, KubeObject] => [PersistentVolumeClaims, pvc]),
    ...(create.job ? [[Jobs, create.job] as [ResourceType, KubeObject]] : []),
  ];
  for (const [type, obj] of objects) {
    try {
      await client.create(type, obj, { fieldManager: FIELD_MANAGER });
    } catch (error) {
      if (!isAlreadyExists(error)) throw error;
    }
  }
}

/** Deletes the Job (its pods with it) and the scratch PVCs, each only when it is the drill's. */
export async function deleteScratch(
  client: KubeClient,
  run: DrillRun,
  targets: VerifyPlan['delete'],
): Promise<void> {
  const objects: Array<[ResourceType, string]> = [
    ...(targets.job ? [[Jobs, targets.job] as [ResourceType, string]] : []),
    ...targets.pvcs.map((pvc): [ResourceType, string] => [PersistentVolumeClaims, pvc]),
  ];
  for (const [type, name] of objects) {
    const obj = await client.get<KubeObject>(type, name, run.namespace);
    if (!obj || !isScratchOf(obj, run.name) || obj.metadata?.deletionTimestamp) continue;
    try {
      await client.delete(type, name, run.namespace, {
        propagationPolicy: 'Background',
        preconditions: { uid: obj.metadata!.uid! },
      });
      run.log.info('deleted a restore drill object', { kind: type.kind, object: name });
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }
}
