/**
 * Hooks of a BackupPolicy: which pods and containers they run in, when they are due, and what
 * their results mean for the run. The decisions are pure functions; `runHooks` is the one
 * step that acts, through a `PodExecutor`.
 *
 * Order within a run: the pre hooks run (in each pod, in order) immediately before the run's
 * snapshots are created, so a snapshot is never created without them having run first in that
 * reconcile; the run is then recorded in status.hookRun (state PreHooksDone) before any
 * snapshot is created, so a controller that restarts in the middle still runs the post hooks
 * once the snapshots are cut. Post hooks run once every snapshot of the run is cut or failed,
 * or at once when a pre hook made the run skip.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type {
  ApiObjectMeta,
  BackupPolicyStatus,
  Hook,
  HookPhase,
  HookResult,
  HookRun,
  Hooks,
  VolumeSnapshot,
} from '../api/index.js';
import { MAX_STATUS_HOOK_RESULTS } from '../api/index.js';
import type { ResourceType } from '../kube/index.js';
import type { PodExecutor } from '../kube/exec.js';
import { rfc3339 } from '../kube/index.js';
import { capMessage } from './messages.js';
import { BackupPolicyReason } from './reasons.js';
import { hasFailed, isDeleting, isReady } from './objects.js';

export type Pod = Omit<V1Pod, 'metadata'> & { metadata: ApiObjectMeta };

export const Pods: ResourceType = {
  group: '',
  version: 'v1',
  plural: 'pods',
  kind: 'Pod',
  namespaced: true,
};

/** How much of a hook's output a message quotes. */
export const HOOK_OUTPUT_TAIL = 300;

/** Whether a policy's spec asks for any hook. */
export function hasHooks(hooks: Hooks | undefined): boolean {
  return (hooks?.pre?.length ?? 0) + (hooks?.post?.length ?? 0) > 0;
}

/** One hook in one pod: what `runHooks` executes. */
export interface HookTarget {
  phase: HookPhase;
  pod: string;
  hook: Hook;
  /** Set when the pod has no such container: the hook fails without an exec. */
  missingContainer?: { containers: string[] };
}

/** The claim names a pod's volumes mount. */
function claimsOf(pod: Pod): string[] {
  return (pod.spec?.volumes ?? [])
    .map((v) => v.persistentVolumeClaim?.claimName)
    .filter((c): c is string => c !== undefined);
}

/**
 * Each hook of a phase in each Running pod (not being deleted) that mounts one of the PVCs,
 * pods by name, hooks in the order of the spec.
 */
export function hookTargets(
  phase: HookPhase,
  hooks: readonly Hook[],
  pvcs: readonly string[],
  pods: readonly Pod[],
): HookTarget[] {
  const wanted = new Set(pvcs);
  const mounting = pods
    .filter((p) => p.status?.phase === 'Running' && !isDeleting(p))
    .filter((p) => claimsOf(p).some((c) => wanted.has(c)))
    .sort((a, b) => (a.metadata.name! < b.metadata.name! ? -1 : 1));
  const targets: HookTarget[] = [];
  for (const pod of mounting) {
    const containers = (pod.spec?.containers ?? []).map((c) => c.name);
    for (const hook of hooks) {
      targets.push({
        phase,
        pod: pod.metadata.name!,
        hook,
        ...(containers.includes(hook.container) ? {} : { missingContainer: { containers } }),
      });
    }
  }
  return targets;
}

/** A hook's result, with what the run needs to know about it. */
export interface HookOutcome {
  result: HookResult;
  failed: boolean;
  onError: Hook['onError'];
  /** The Event text: pod, container, command, exit code or error, output tail. */
  description: string;
}

export const commandLine = (command: readonly string[]) => capMessage(command.join(' '));

const tail = (output: string) => {
  const trimmed = output.trim();
  return trimmed.length <= HOOK_OUTPUT_TAIL
    ? trimmed
    : `…${trimmed.slice(trimmed.length - HOOK_OUTPUT_TAIL)}`;
};

/**
 * Runs the targets one after another. In the pre phase, the first failure of a hook with
 * onError Fail stops the phase (the run is skipped); post hooks always all run.
 */
export async function runHooks(
  executor: PodExecutor,
  namespace: string,
  targets: readonly HookTarget[],
  now: () => Date,
): Promise<HookOutcome[]> {
  const outcomes: HookOutcome[] = [];
  for (const target of targets) {
    const { hook, pod, phase } = target;
    const command = commandLine(hook.command);
    const where = `${phase} hook in pod ${pod} container ${hook.container}: "${command}"`;
    let exitCode: number | undefined;
    let message: string;
    if (target.missingContainer) {
      message = `pod ${pod} has no container ${hook.container} (it has ${target.missingContainer.containers.join(', ') || 'none'}); fix spec.hooks.${phase}[].container`;
    } else {
      const run = await executor.exec({
        namespace,
        pod,
        container: hook.container,
        command: hook.command,
        timeoutMs: hook.timeoutSeconds * 1000,
      });
      exitCode = run.exitCode;
      const output = tail(run.output);
      const said = output ? `; output: ${output}` : '';
      message =
        run.exitCode === 0
          ? `exited 0${said}`
          : run.exitCode !== undefined
            ? `exited ${run.exitCode}${said}`
            : `${run.error ?? 'failed'}${said}`;
    }
    const failed = exitCode !== 0;
    const result: HookResult = {
      phase,
      pod,
      container: hook.container,
      command,
      ...(exitCode !== undefined ? { exitCode } : {}),
      message: capMessage(message),
      time: rfc3339(now()),
    };
    outcomes.push({
      result,
      failed,
      onError: hook.onError,
      description: capMessage(`${where} ${message}`),
    });
    if (phase === 'pre' && failed && hook.onError === 'Fail') break;
  }
  return outcomes;
}

/** The pre hook failure that skips the run, if any. */
export function skippingFailure(outcomes: readonly HookOutcome[]): HookOutcome | undefined {
  return outcomes.find((o) => o.result.phase === 'pre' && o.failed && o.onError === 'Fail');
}

/** status.lastHooks: the results of the run, pre hooks first, bounded (the newest kept). */
export function lastHooks(
  previous: readonly HookResult[] | undefined,
  outcomes: readonly HookOutcome[],
): HookResult[] {
  const merged = [...(previous ?? []), ...outcomes.map((o) => o.result)];
  return merged.slice(-MAX_STATUS_HOOK_RESULTS);
}

/** Where a snapshot of a hooked run is: post hooks wait while any is still being cut. */
export function isCutOrFailed(snapshot: VolumeSnapshot | undefined): boolean {
  if (!snapshot || isDeleting(snapshot)) return true;
  return isReady(snapshot) || snapshot.status?.creationTime !== undefined || hasFailed(snapshot);
}

/**
 * Whether the post hooks of the recorded run are due: the run passed its pre hooks and every
 * one of its snapshots is cut, failed, timed out or gone. `timedOut` says which ones the
 * policy's readyDeadlineSeconds gave up on.
 */
export function postHooksDue(
  hookRun: HookRun | undefined,
  snapshots: readonly VolumeSnapshot[],
  timedOut: (snapshot: VolumeSnapshot) => boolean,
): boolean {
  if (hookRun?.state !== 'PreHooksDone') return false;
  const byName = new Map(snapshots.map((s) => [s.metadata.name!, s]));
  return (hookRun.snapshots ?? []).every((name) => {
    const snapshot = byName.get(name);
    return isCutOrFailed(snapshot) || timedOut(snapshot!);
  });
}

/** The Degraded problem the recorded run leaves, until the next run replaces it. */
export function hookRunProblem(
  status: BackupPolicyStatus | undefined,
): { reason: string; message: string } | undefined {
  const hookRun = status?.hookRun;
  if (!hookRun?.message) return undefined;
  return { reason: BackupPolicyReason.HookFailed, message: hookRun.message };
}
